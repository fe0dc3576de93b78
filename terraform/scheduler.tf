# The daily call of renew_watches. Gmail stops notifying for a mailbox whose
# watch is not renewed within 7 days, and drops notifications beyond one per
# second; each run renews every watch and queues a catch-up sync per mailbox.

locals {
  # Backoff doubles three times: the last retry waits 8x the first.
  renew_watches_max_backoff_s = var.renew_watches_min_backoff_s * 8
}

resource "google_cloud_scheduler_job" "renew_watches" {
  name        = "${var.name_prefix}-renew-watches"
  region      = var.region
  description = "inboxsync: renew every mailbox's Gmail watch and queue a catch-up sync."
  schedule    = var.renew_watches_schedule
  time_zone   = var.renew_watches_time_zone
  # Longer than the function may run, so Scheduler never gives up on a run
  # that is still renewing.
  attempt_deadline = "${var.renew_watches_timeout_s}s"

  # renew_watches answers 503 when some mailbox failed transiently; the
  # retry renews all of them again, which is harmless (catch-up tasks are
  # named per mailbox and history id).
  retry_config {
    retry_count          = var.renew_watches_retry_attempts
    min_backoff_duration = "${var.renew_watches_min_backoff_s}s"
    max_backoff_duration = "${local.renew_watches_max_backoff_s}s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = local.renew_watches_url

    oidc_token {
      service_account_email = google_service_account.scheduler_invoker.email
      audience              = local.renew_watches_url
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_service_iam_member.scheduler_invoker_calls_renew_watches,
  ]
}
