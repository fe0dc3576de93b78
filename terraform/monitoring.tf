# Two alerts: error log lines from the functions (every dead letter is
# logged at ERROR), and notifications waiting in the dead-letter subscription.

locals {
  alert_channels = concat(
    [for channel in google_monitoring_notification_channel.email : channel.id],
    var.alert_notification_channel_ids,
  )
  alert_window = "${var.alert_window_s}s"
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  display_name = "inboxsync alerts: ${each.key}"
  type         = "email"
  labels = {
    email_address = each.key
  }

  depends_on = [google_project_service.enabled]
}

# Gen2 functions log as their Cloud Run services.
resource "google_logging_metric" "function_errors" {
  name        = "${var.name_prefix}/function_errors"
  description = "Log lines at ERROR or above from the inboxsync functions."
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name=("${local.receive_push_name}" OR "${local.run_sync_name}" OR "${local.renew_name}")
    severity>=ERROR
  EOT

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "inboxsync function errors"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "Cloud Run service (function) that wrote the line."
    }
  }

  label_extractors = {
    service = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "function_errors" {
  display_name = "inboxsync: function errors or dead letters (${var.name_prefix})"
  combiner     = "OR"

  conditions {
    display_name = "ERROR log lines in receive_push, run_sync or renew_watches"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.error_alert_threshold_count
      duration        = "0s"

      aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.service"]
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The inboxsync functions logged errors. Permanent failures are recorded
      as dead letters in the Firestore collection `dead_letters` and can be
      replayed with the inboxsync CLI once the cause is fixed. Open the logs
      of the service named in the incident (severity ERROR) for the reason.
    EOT
  }
}

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  display_name = "inboxsync: Gmail notifications dead-lettered (${var.name_prefix})"
  combiner     = "OR"

  conditions {
    display_name = "Undelivered messages in ${google_pubsub_subscription.gmail_dead_letter.name}"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.gmail_dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.dead_letter_alert_threshold_count
      duration        = "0s"

      aggregations {
        alignment_period   = local.alert_window
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Pub/Sub gave up pushing some Gmail notifications to receive_push and
      parked them in the dead-letter subscription. No mail is lost: the next
      notification or sync of the mailbox reads history from its stored
      checkpoint. Find out why receive_push refused them (its logs), then
      pull and acknowledge the parked messages.
    EOT
  }

  depends_on = [google_project_service.enabled]
}
