"""The process and machine a run lives in: hardware facts and the commands' allocator settings."""
