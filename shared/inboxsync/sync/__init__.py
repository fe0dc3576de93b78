"""The sync engine behind `run_sync`: checkpointed history sync, exactly-once actions."""
