# Gmail -> Pub/Sub -> receive_push, with a dead-letter topic so that a
# notification receive_push keeps refusing is parked, never dropped.

locals {
  # Pub/Sub keeps an unacknowledged message at most 7 days on a subscription.
  subscription_retention = "604800s"
}

resource "google_pubsub_topic" "gmail" {
  name = "${var.name_prefix}-gmail"

  depends_on = [google_project_service.enabled]
}

# users.watch publishes as this Google-owned account; without the grant the
# watch call fails with a permission error on the topic.
resource "google_pubsub_topic_iam_member" "gmail_publishes" {
  topic  = google_pubsub_topic.gmail.name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:gmail-api-push@system.gserviceaccount.com"
}

resource "google_pubsub_topic" "gmail_dead_letter" {
  name = "${var.name_prefix}-gmail-dead-letter"

  depends_on = [google_project_service.enabled]
}

# A dead-letter topic without a subscription discards what it receives.
resource "google_pubsub_subscription" "gmail_dead_letter" {
  name  = "${var.name_prefix}-gmail-dead-letter"
  topic = google_pubsub_topic.gmail_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "${var.dead_letter_retention_days * 86400}s"

  expiration_policy {
    ttl = "" # never expire, however long nothing fails
  }
}

resource "google_pubsub_subscription" "gmail_push" {
  name  = "${var.name_prefix}-gmail-push"
  topic = google_pubsub_topic.gmail.id

  # Also the time Pub/Sub waits for receive_push's answer to one push.
  ack_deadline_seconds       = var.ack_deadline_s
  message_retention_duration = local.subscription_retention

  push_config {
    # The function's own URL, which is local.receive_push_url (checked by a
    # postcondition on the function). Referencing the resource also makes
    # pushes start only once the function exists.
    push_endpoint = google_cloudfunctions2_function.receive_push.url

    oidc_token {
      service_account_email = google_service_account.push_invoker.email
      # The same string receive_push checks the token's `aud` against.
      audience = local.receive_push_url
    }
  }

  retry_policy {
    minimum_backoff = "${var.push_min_backoff_s}s"
    maximum_backoff = "${var.push_max_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.gmail_dead_letter.id
    max_delivery_attempts = var.push_max_delivery_attempts
  }

  # A mailbox can be quiet for weeks; the default 31-day inactivity expiry
  # would silently delete the subscription.
  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = var.push_min_backoff_s <= var.push_max_backoff_s
      error_message = "push_min_backoff_s must not exceed push_max_backoff_s."
    }
  }

  # Without these grants the dead-letter policy cannot move messages.
  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters,
    google_pubsub_subscription.gmail_dead_letter,
  ]
}
