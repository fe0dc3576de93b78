# What operators and the inboxsync CLI need after an apply.

output "receive_push_url" {
  description = "URL of receive_push, also the audience of the push subscription's OIDC tokens."
  value       = google_cloudfunctions2_function.receive_push.url
}

output "run_sync_url" {
  description = "URL of run_sync, also the audience of the sync tasks' OIDC tokens."
  value       = google_cloudfunctions2_function.run_sync.url
}

output "renew_watches_url" {
  description = "URL of renew_watches, also the audience of the Cloud Scheduler job's OIDC tokens."
  value       = google_cloudfunctions2_function.renew_watches.url
}

output "renew_watches_job" {
  description = "Cloud Scheduler job that calls renew_watches; `gcloud scheduler jobs run` starts a renewal at once."
  value       = google_cloud_scheduler_job.renew_watches.id
}

output "gmail_topic" {
  description = "Full topic name to pass as topicName to users.watch when registering a mailbox."
  value       = google_pubsub_topic.gmail.id
}

output "push_subscription" {
  description = "Push subscription that delivers Gmail notifications to receive_push."
  value       = google_pubsub_subscription.gmail_push.id
}

output "dead_letter_subscription" {
  description = "Pull subscription holding notifications Pub/Sub could not deliver; inspect and acknowledge by hand."
  value       = google_pubsub_subscription.gmail_dead_letter.id
}

output "tasks_queue_id" {
  description = "Full id of the Cloud Tasks queue carrying sync tasks (projects/P/locations/L/queues/Q)."
  value       = google_cloud_tasks_queue.sync.id
}

output "firestore_database" {
  description = "Firestore database id the functions use (INBOXSYNC_FIRESTORE_DATABASE for the CLI)."
  value       = google_firestore_database.main.name
}

output "push_invoker_email" {
  description = "Service account in the OIDC token of each push to receive_push."
  value       = google_service_account.push_invoker.email
}

output "tasks_invoker_email" {
  description = "Service account in the OIDC token of each sync task sent to run_sync."
  value       = google_service_account.tasks_invoker.email
}

output "scheduler_invoker_email" {
  description = "Service account in the OIDC token of each Cloud Scheduler call of renew_watches."
  value       = google_service_account.scheduler_invoker.email
}

output "receive_push_service_account_email" {
  description = "Runtime service account of receive_push."
  value       = google_service_account.receive_push.email
}

output "run_sync_service_account_email" {
  description = "Runtime service account of run_sync; grant it access to each mailbox's refresh-token secret if oauth_secret_prefix is not used."
  value       = google_service_account.run_sync.email
}

output "renew_watches_service_account_email" {
  description = "Runtime service account of renew_watches."
  value       = google_service_account.renew_watches.email
}

output "run_sync_client_id" {
  description = "OAuth client id of run_sync's service account: the id to authorise for domain-wide delegation in the Workspace admin console."
  value       = google_service_account.run_sync.unique_id
}

output "source_bucket" {
  description = "Bucket holding the uploaded function source zips."
  value       = google_storage_bucket.sources.name
}
