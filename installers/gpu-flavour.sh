# Which llama.cpp build installers/setup.sh makes: CUDA, Vulkan or CPU.  Sourced, not run.
#
#   NEXUS_GPU=auto (default)  CUDA when nvidia-smi and a working nvcc are present, else Vulkan when
#                             its toolchain (glslc and the Vulkan headers) is already installed,
#                             else CPU.  Nothing is installed to make a GPU build possible.
#   NEXUS_GPU=cuda|vulkan|cpu that build, whatever is found.
#   CMAKE_ARGS=...            set by hand: used as given (NEXUS_GPU is then ignored).
#
# llama_flavour sets CMAKE_ARGS and LLAMA_FLAVOUR (the wheel cache's folder name).  The CPU build
# keeps CMAKE_ARGS empty and the folder "cpu", so a wheel cached before GPU builds existed is reused.

# Where the Vulkan headers may be: the LunarG SDK's, then the distribution's (libvulkan-dev).
VULKAN_INCLUDE_DIRS="${VULKAN_INCLUDE_DIRS:-${VULKAN_SDK:+$VULKAN_SDK/include }/usr/include /usr/local/include}"

has_cuda_toolkit() {
  # nvcc may be a wrapper around a toolkit that is gone, so it has to run, not just exist.
  command -v nvidia-smi >/dev/null 2>&1 && nvcc --version >/dev/null 2>&1
}

has_vulkan_toolchain() {
  command -v glslc >/dev/null 2>&1 || return 1
  if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists vulkan 2>/dev/null; then
    return 0
  fi
  local dir
  for dir in $VULKAN_INCLUDE_DIRS; do
    [[ -f "$dir/vulkan/vulkan.h" ]] && return 0
  done
  return 1
}

# The cache folder for the current CMAKE_ARGS: "cpu" for none, else a hash of the flags.
flavour_cache_key() {
  if [[ -z "${CMAKE_ARGS:-}" ]]; then
    echo "cpu"
  else
    echo "cmake-$(printf '%s' "$CMAKE_ARGS" | md5sum | cut -c1-8)"
  fi
}

# Sets CMAKE_ARGS, LLAMA_FLAVOUR and LLAMA_BACKEND (CUDA, Vulkan, CPU or custom); returns 2 with a
# message for an unknown NEXUS_GPU.
llama_flavour() {
  local choice="${NEXUS_GPU:-auto}"
  if [[ -n "${CMAKE_ARGS:-}" ]]; then
    LLAMA_BACKEND="custom"
  else
    case "$choice" in
      cuda) LLAMA_BACKEND="CUDA" ;;
      vulkan) LLAMA_BACKEND="Vulkan" ;;
      cpu) LLAMA_BACKEND="CPU" ;;
      auto)
        if has_cuda_toolkit; then
          LLAMA_BACKEND="CUDA"
        elif has_vulkan_toolchain; then
          LLAMA_BACKEND="Vulkan"
        else
          LLAMA_BACKEND="CPU"
        fi
        ;;
      *)
        echo "NEXUS_GPU=$choice is not a build: use auto, cuda, vulkan or cpu." >&2
        return 2
        ;;
    esac
    case "$LLAMA_BACKEND" in
      CUDA) CMAKE_ARGS="-DGGML_CUDA=on" ;;
      Vulkan) CMAKE_ARGS="-DGGML_VULKAN=on" ;;
      CPU) CMAKE_ARGS="" ;;
    esac
  fi
  export CMAKE_ARGS
  LLAMA_FLAVOUR="$(flavour_cache_key)"
}

# Whether llama-cpp-python must be (re)installed.  $1: the pinned version; $2: the installed one
# ("" for none); $3: what set-up last installed, "VERSION REQUESTED BUILT" (flavours; "" if unknown).
# Yes for another version or another requested flavour, and when NEXUS_GPU names a build that last
# time fell back to the CPU (asked again: try again).  An install older than this record is kept
# unless NEXUS_GPU asks for a flavour.
llama_needs_install() {
  local pinned="$1" installed="$2" record="$3" version requested built
  [[ "$installed" != "$pinned" ]] && return 0
  if [[ -z "$record" ]]; then
    [[ -n "${NEXUS_GPU:-}" && "$NEXUS_GPU" != "auto" ]]
    return
  fi
  read -r version requested built <<<"$record"
  [[ "$version" != "$pinned" || "$requested" != "$LLAMA_FLAVOUR" ]] && return 0
  [[ -n "${NEXUS_GPU:-}" && "$NEXUS_GPU" != "auto" && "$built" != "$LLAMA_FLAVOUR" ]]
}

# Runs "$@" (the wheel build) with the chosen flags.  A GPU build that fails is reported and the
# CPU build is made instead, so set-up never ends without llama.cpp; a CPU build that fails fails.
build_with_cpu_fallback() {
  if "$@"; then
    return 0
  fi
  if [[ -z "${CMAKE_ARGS:-}" ]]; then
    return 1
  fi
  echo "The $LLAMA_BACKEND build of llama.cpp (CMAKE_ARGS=\"$CMAKE_ARGS\") did not compile;" \
    "building the CPU version instead. Chat works on the CPU; for the GPU build install the" \
    "toolkit (CUDA, or glslc and libvulkan-dev for Vulkan) and run set-up again." >&2
  CMAKE_ARGS=""
  LLAMA_BACKEND="CPU"
  LLAMA_FLAVOUR="$(flavour_cache_key)"
  "$@"
}
