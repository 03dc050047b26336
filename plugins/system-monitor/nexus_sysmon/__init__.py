"""The system monitor module: CPU, memory, processes and NVIDIA GPU memory as tools and a panel."""
