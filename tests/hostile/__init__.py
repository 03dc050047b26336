"""Builders for module folders and archives, good and hostile, made fresh in each test's tmp dir."""
