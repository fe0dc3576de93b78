"""The sync engine behind `run_sync`: checkpointed history sync, one run per action."""
