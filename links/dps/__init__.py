"""NVIDIA Dynamic Power Software (DPS) topology files: our check of the documented format, import and export."""
