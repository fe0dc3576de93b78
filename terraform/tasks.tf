# The queue between receive_push and run_sync. receive_push creates the
# tasks itself (named by a hash of the push event, with an OIDC token of
# tasks-invoker), so the queue only carries the retry and rate settings.

locals {
  tasks_location = coalesce(var.tasks_location, var.region)

  # run_sync dead-letters a task on its last allowed attempt and answers 2xx.
  # One spare attempt on the queue guarantees that last attempt is always
  # dispatched, so Cloud Tasks never drops a task before run_sync has
  # recorded it.
  queue_max_attempts = var.task_max_attempts + 1
}

resource "google_cloud_tasks_queue" "sync" {
  name     = "${var.name_prefix}-sync"
  location = local.tasks_location

  rate_limits {
    max_dispatches_per_second = var.task_max_dispatches_per_second
    max_concurrent_dispatches = var.task_max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = local.queue_max_attempts
    min_backoff   = "${var.task_min_backoff_s}s"
    max_backoff   = "${var.task_max_backoff_s}s"
    max_doublings = var.task_max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.task_log_sampling_ratio
  }

  lifecycle {
    precondition {
      condition     = var.task_min_backoff_s <= var.task_max_backoff_s
      error_message = "task_min_backoff_s must not exceed task_max_backoff_s."
    }
    precondition {
      # Each run_sync instance takes one request at a time; more concurrent
      # dispatches than instances only buys 429s and retries.
      condition     = var.task_max_concurrent_dispatches <= var.run_sync_max_instances
      error_message = "task_max_concurrent_dispatches must not exceed run_sync_max_instances."
    }
  }

  depends_on = [google_project_service.enabled]
}
