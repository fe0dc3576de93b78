# The three HTTP functions (Cloud Functions gen2, Python 3.11), deployed from
# the folders `make dist` builds: zipped, uploaded, built by Cloud Build.

locals {
  dist_dir = coalesce(var.dist_dir, "${path.module}/../build/dist")
  runtime  = "python311"

  receive_push_name = "${var.name_prefix}-receive-push"
  run_sync_name     = "${var.name_prefix}-run-sync"
  renew_name        = "${var.name_prefix}-renew-watches"

  # The audience chicken-and-egg: each function checks the `aud` of incoming
  # OIDC tokens against its own URL, but Terraform learns a function's URL
  # only after creating it, and the URL must already be in the function's
  # environment at creation. We compute the URL instead: a gen2 function is
  # also served at https://REGION-PROJECT_ID.cloudfunctions.net/NAME, a
  # fixed pattern (unlike the hashed *.run.app address) that its Cloud Run
  # service accepts as token audience. The function, the push subscription,
  # the Cloud Tasks tasks and the Cloud Scheduler job all use this one
  # string, and a postcondition
  # on each function fails the apply if Google ever reports another URL.
  # (Cloud Run's deterministic NAME-PROJECT_NUMBER.REGION.run.app address
  # would also do, but needs the project number and a short enough name.)
  function_base_url = "https://${var.region}-${var.project_id}.cloudfunctions.net"
  receive_push_url  = "${local.function_base_url}/${local.receive_push_name}"
  run_sync_url      = "${local.function_base_url}/${local.run_sync_name}"
  renew_watches_url = "${local.function_base_url}/${local.renew_name}"

  common_env = {
    INBOXSYNC_PROJECT            = var.project_id
    INBOXSYNC_FIRESTORE_DATABASE = google_firestore_database.main.name
    INBOXSYNC_LOG_LEVEL          = var.log_level
    # The platform sets this itself; declaring it avoids a permanent diff.
    LOG_EXECUTION_ID = "true"
  }

  function_folders = toset(["receive_push", "run_sync", "renew_watches"])
}

# --- Sources -------------------------------------------------------------------------

data "archive_file" "source" {
  for_each = local.function_folders

  type        = "zip"
  source_dir  = "${local.dist_dir}/${each.key}"
  output_path = "${path.module}/../build/zip/${each.key}.zip"

  lifecycle {
    precondition {
      condition     = fileexists("${local.dist_dir}/${each.key}/main.py")
      error_message = "No ${local.dist_dir}/${each.key}/main.py: run `make dist` at the repository root before terraform plan/apply."
    }
  }
}

resource "google_storage_bucket" "sources" {
  name     = "${var.project_id}-${var.name_prefix}-sources"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds nothing but zips that `make dist` can rebuild.
  force_destroy = true

  lifecycle_rule {
    condition {
      age = var.source_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "source" {
  for_each = data.archive_file.source

  # The content hash in the name is what makes a changed source redeploy.
  name   = "${each.key}/${each.value.output_md5}.zip"
  bucket = google_storage_bucket.sources.name
  source = each.value.output_path
}

# --- receive_push --------------------------------------------------------------------

resource "google_cloudfunctions2_function" "receive_push" {
  name        = local.receive_push_name
  location    = var.region
  description = "inboxsync: Pub/Sub push endpoint for Gmail notifications."

  build_config {
    runtime         = local.runtime
    entry_point     = "receive_push"
    service_account = google_service_account.builder.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source["receive_push"].name
      }
    }
  }

  service_config {
    available_memory   = "${var.receive_push_memory_mb}M"
    min_instance_count = var.receive_push_min_instances
    max_instance_count = var.receive_push_max_instances
    # Pub/Sub stops waiting at the ack deadline; work past it is wasted.
    timeout_seconds                  = var.ack_deadline_s
    max_instance_request_concurrency = 1
    # Pub/Sub push and Cloud Tasks arrive over the public endpoint; IAM (only
    # the invoker accounts hold run.invoker) is what keeps the function closed.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.receive_push.email

    environment_variables = merge(local.common_env, {
      INBOXSYNC_PUSH_AUDIENCE         = local.receive_push_url
      INBOXSYNC_PUSH_ALLOWED_EMAILS   = google_service_account.push_invoker.email
      INBOXSYNC_TASKS_LOCATION        = google_cloud_tasks_queue.sync.location
      INBOXSYNC_TASKS_QUEUE           = google_cloud_tasks_queue.sync.name
      INBOXSYNC_SYNC_URL              = local.run_sync_url
      INBOXSYNC_SYNC_AUDIENCE         = local.run_sync_url
      INBOXSYNC_TASKS_SERVICE_ACCOUNT = google_service_account.tasks_invoker.email
      INBOXSYNC_PUSH_EVENT_TTL_DAYS   = tostring(var.push_event_ttl_days)
    })
  }

  lifecycle {
    postcondition {
      condition     = self.url == local.receive_push_url
      error_message = "receive_push is served at ${self.url}, not at the computed ${local.receive_push_url} that its token audience uses; the URL pattern in functions.tf needs updating."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_sources,
  ]
}

# --- run_sync ------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "run_sync" {
  name        = local.run_sync_name
  location    = var.region
  description = "inboxsync: syncs one mailbox from its checkpoint and performs the rule actions (Cloud Tasks target)."

  build_config {
    runtime         = local.runtime
    entry_point     = "run_sync"
    service_account = google_service_account.builder.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source["run_sync"].name
      }
    }
  }

  service_config {
    available_memory                 = "${var.run_sync_memory_mb}M"
    min_instance_count               = 0
    max_instance_count               = var.run_sync_max_instances
    timeout_seconds                  = var.run_sync_timeout_s
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.run_sync.email

    environment_variables = merge(
      local.common_env,
      {
        INBOXSYNC_SYNC_AUDIENCE                = local.run_sync_url
        INBOXSYNC_SYNC_ALLOWED_EMAILS          = google_service_account.tasks_invoker.email
        INBOXSYNC_RULES_FILE                   = var.rules_file
        INBOXSYNC_MAX_ATTEMPTS                 = tostring(var.task_max_attempts)
        INBOXSYNC_GMAIL_QUOTA_UNITS_PER_MINUTE = tostring(var.gmail_quota_units_per_minute)
      },
      # Set only when domain-wide delegation is used.
      { for name, value in { INBOXSYNC_DELEGATED_ADMIN = var.delegated_admin } : name => value if value != null },
    )

    # Secrets the rules refer to by environment variable name (forward
    # actions' signing secrets), resolved when an instance starts.
    dynamic "secret_environment_variables" {
      for_each = var.run_sync_secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  lifecycle {
    postcondition {
      condition     = self.url == local.run_sync_url
      error_message = "run_sync is served at ${self.url}, not at the computed ${local.run_sync_url} that its token audience uses; the URL pattern in functions.tf needs updating."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_sources,
    google_secret_manager_secret_iam_member.run_sync_reads_rule_secrets,
  ]
}

# --- renew_watches -------------------------------------------------------------------

resource "google_cloudfunctions2_function" "renew_watches" {
  name        = local.renew_name
  location    = var.region
  description = "inboxsync: renews every active mailbox's Gmail watch and queues a catch-up sync for it (Cloud Scheduler target)."

  build_config {
    runtime         = local.runtime
    entry_point     = "renew_watches"
    service_account = google_service_account.builder.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source["renew_watches"].name
      }
    }
  }

  service_config {
    available_memory   = "${var.renew_watches_memory_mb}M"
    min_instance_count = 0
    # One scheduled run at a time; a retry never overlaps a run still going.
    max_instance_count               = 1
    timeout_seconds                  = var.renew_watches_timeout_s
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.renew_watches.email

    environment_variables = merge(local.common_env, {
      INBOXSYNC_RENEW_AUDIENCE        = local.renew_watches_url
      INBOXSYNC_RENEW_ALLOWED_EMAILS  = google_service_account.scheduler_invoker.email
      INBOXSYNC_GMAIL_TOPIC           = google_pubsub_topic.gmail.id
      INBOXSYNC_WATCH_LABELS          = join(",", var.watch_label_ids)
      INBOXSYNC_TASKS_LOCATION        = google_cloud_tasks_queue.sync.location
      INBOXSYNC_TASKS_QUEUE           = google_cloud_tasks_queue.sync.name
      INBOXSYNC_SYNC_URL              = local.run_sync_url
      INBOXSYNC_SYNC_AUDIENCE         = local.run_sync_url
      INBOXSYNC_TASKS_SERVICE_ACCOUNT = google_service_account.tasks_invoker.email
      # A delegated mailbox's watch is asked for as the account authorised for
      # domain-wide delegation, the same one run_sync uses: delegated_admin
      # when set, otherwise run_sync's own service account (one client id to
      # authorise in the Workspace admin console, not two).
      INBOXSYNC_DELEGATED_ADMIN = coalesce(var.delegated_admin, google_service_account.run_sync.email)
    })
  }

  lifecycle {
    postcondition {
      condition     = self.url == local.renew_watches_url
      error_message = "renew_watches is served at ${self.url}, not at the computed ${local.renew_watches_url} that its token audience uses; the URL pattern in functions.tf needs updating."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_sources,
  ]
}
