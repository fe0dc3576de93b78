# Identities and who may do what. Each function runs as its own service
# account holding only what its code calls; neither function is public.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  receive_push_member  = "serviceAccount:${google_service_account.receive_push.email}"
  run_sync_member      = "serviceAccount:${google_service_account.run_sync.email}"
  renew_watches_member = "serviceAccount:${google_service_account.renew_watches.email}"
  push_invoker_member  = "serviceAccount:${google_service_account.push_invoker.email}"
  tasks_invoker_member = "serviceAccount:${google_service_account.tasks_invoker.email}"
  scheduler_member     = "serviceAccount:${google_service_account.scheduler_invoker.email}"
  builder_member       = "serviceAccount:${google_service_account.builder.email}"
  pubsub_agent_member  = "serviceAccount:${google_project_service_identity.pubsub.email}"

  # Firestore IAM conditions name a database by project id and database id.
  firestore_condition = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
}

# --- Service accounts ----------------------------------------------------------------

resource "google_service_account" "push_invoker" {
  account_id   = "${var.name_prefix}-push-invoker"
  display_name = "inboxsync push invoker"
  description  = "Identity in the OIDC token that Pub/Sub attaches to each push sent to receive_push."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "tasks_invoker" {
  account_id   = "${var.name_prefix}-tasks-invoker"
  display_name = "inboxsync tasks invoker"
  description  = "Identity in the OIDC token of each Cloud Tasks sync task sent to run_sync."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler_invoker" {
  account_id   = "${var.name_prefix}-sched-invoker"
  display_name = "inboxsync scheduler invoker"
  description  = "Identity in the OIDC token of each Cloud Scheduler call of renew_watches."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "receive_push" {
  account_id   = "${var.name_prefix}-receive-push"
  display_name = "inboxsync receive_push runtime"
  description  = "Runs receive_push: writes push-event markers and enqueues sync tasks."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "run_sync" {
  account_id   = "${var.name_prefix}-run-sync"
  display_name = "inboxsync run_sync runtime"
  description  = "Runs run_sync: reads Gmail for each mailbox and performs the configured actions."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "renew_watches" {
  account_id   = "${var.name_prefix}-renew-watches"
  display_name = "inboxsync renew_watches runtime"
  description  = "Runs renew_watches: renews each mailbox's Gmail watch and enqueues catch-up syncs."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "builder" {
  account_id   = "${var.name_prefix}-build"
  display_name = "inboxsync function builder"
  description  = "Cloud Build identity that turns the uploaded sources into function images."

  depends_on = [google_project_service.enabled]
}

# --- Service agents ------------------------------------------------------------------

# Creates the Pub/Sub service agent if the project does not have it yet and
# tells us its address; it moves undeliverable pushes to the dead-letter topic.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.gmail_dead_letter.name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent_member
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  subscription = google_pubsub_subscription.gmail_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent_member
}

# Projects that enabled Pub/Sub before April 2021 need this for the service
# agent to mint push OIDC tokens; it is limited to the one push identity.
resource "google_service_account_iam_member" "pubsub_agent_signs_push_tokens" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent_member
}

# --- Invokers: only the three invoker identities may call the functions --------------

resource "google_cloud_run_v2_service_iam_member" "push_invoker_calls_receive_push" {
  project  = var.project_id
  location = google_cloudfunctions2_function.receive_push.location
  name     = google_cloudfunctions2_function.receive_push.name
  role     = "roles/run.invoker"
  member   = local.push_invoker_member
}

resource "google_cloud_run_v2_service_iam_member" "tasks_invoker_calls_run_sync" {
  project  = var.project_id
  location = google_cloudfunctions2_function.run_sync.location
  name     = google_cloudfunctions2_function.run_sync.name
  role     = "roles/run.invoker"
  member   = local.tasks_invoker_member
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invoker_calls_renew_watches" {
  project  = var.project_id
  location = google_cloudfunctions2_function.renew_watches.location
  name     = google_cloudfunctions2_function.renew_watches.name
  role     = "roles/run.invoker"
  member   = local.scheduler_member
}

# --- receive_push runtime ------------------------------------------------------------

resource "google_project_iam_member" "receive_push_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.receive_push_member

  condition {
    title       = "${var.name_prefix} database only"
    description = "Firestore access limited to the inboxsync database."
    expression  = local.firestore_condition
  }
}

resource "google_cloud_tasks_queue_iam_member" "receive_push_enqueues" {
  project  = var.project_id
  location = google_cloud_tasks_queue.sync.location
  name     = google_cloud_tasks_queue.sync.name
  role     = "roles/cloudtasks.enqueuer"
  member   = local.receive_push_member
}

# Creating a task that carries an OIDC token of tasks-invoker means acting as
# tasks-invoker, which needs this role on that one account.
resource "google_service_account_iam_member" "receive_push_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.receive_push_member
}

# --- run_sync runtime ----------------------------------------------------------------

resource "google_project_iam_member" "run_sync_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.run_sync_member

  condition {
    title       = "${var.name_prefix} database only"
    description = "Firestore access limited to the inboxsync database."
    expression  = local.firestore_condition
  }
}

# Per-mailbox OAuth refresh tokens live in Secret Manager. Secrets are added
# when mailboxes are registered, so the grant is project-wide, narrowed to a
# name prefix when oauth_secret_prefix is set (such conditions use the
# project number).
resource "google_project_iam_member" "run_sync_reads_refresh_tokens" {
  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = local.run_sync_member

  dynamic "condition" {
    for_each = var.oauth_secret_prefix == null ? [] : [var.oauth_secret_prefix]
    content {
      title       = "${var.name_prefix} refresh tokens only"
      description = "Secrets whose name starts with ${condition.value}."
      expression  = "resource.name.startsWith(\"projects/${data.google_project.this.number}/secrets/${condition.value}\")"
    }
  }
}

# Secrets mounted into run_sync's environment (run_sync_secret_env), granted
# one by one so they need not match oauth_secret_prefix.
resource "google_secret_manager_secret_iam_member" "run_sync_reads_rule_secrets" {
  for_each = toset(values(var.run_sync_secret_env))

  project   = var.project_id
  secret_id = each.key
  role      = "roles/secretmanager.secretAccessor"
  member    = local.run_sync_member
}

# Keyless domain-wide delegation: run_sync signs its own JWT through the IAM
# signJwt API instead of holding a key file, which needs this role on itself.
resource "google_service_account_iam_member" "run_sync_signs_own_jwt" {
  service_account_id = google_service_account.run_sync.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.run_sync_member
}

# --- renew_watches runtime -----------------------------------------------------------

resource "google_project_iam_member" "renew_watches_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.renew_watches_member

  condition {
    title       = "${var.name_prefix} database only"
    description = "Firestore access limited to the inboxsync database."
    expression  = local.firestore_condition
  }
}

resource "google_cloud_tasks_queue_iam_member" "renew_watches_enqueues" {
  project  = var.project_id
  location = google_cloud_tasks_queue.sync.location
  name     = google_cloud_tasks_queue.sync.name
  role     = "roles/cloudtasks.enqueuer"
  member   = local.renew_watches_member
}

# Catch-up tasks carry an OIDC token of tasks-invoker, like receive_push's.
resource "google_service_account_iam_member" "renew_watches_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.renew_watches_member
}

# users.watch needs the mailbox's credentials, read the same way run_sync
# reads them: the refresh-token secrets, with the same name-prefix condition.
resource "google_project_iam_member" "renew_watches_reads_refresh_tokens" {
  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = local.renew_watches_member

  dynamic "condition" {
    for_each = var.oauth_secret_prefix == null ? [] : [var.oauth_secret_prefix]
    content {
      title       = "${var.name_prefix} refresh tokens only"
      description = "Secrets whose name starts with ${condition.value}."
      expression  = "resource.name.startsWith(\"projects/${data.google_project.this.number}/secrets/${condition.value}\")"
    }
  }
}

# Delegated mailboxes: renew_watches signs the delegation JWT as run_sync's
# service account (the one client id authorised in the Workspace admin
# console), so it may create tokens for that one account only.
resource "google_service_account_iam_member" "renew_watches_signs_as_run_sync" {
  service_account_id = google_service_account.run_sync.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.renew_watches_member
}

# --- Builder -------------------------------------------------------------------------

resource "google_project_iam_member" "builder" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.key
  member  = local.builder_member
}

resource "google_storage_bucket_iam_member" "builder_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = local.builder_member
}
