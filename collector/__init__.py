"""The collector process: samples every GPU (NVML) and the host (psutil), evaluates alert rules, writes history."""
