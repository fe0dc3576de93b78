# Inputs. Units are in the names (_s, _mb, _days, ...); every value that the
# product also reads is handed to the functions as an environment variable.

# --- Project and naming ------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Project to deploy into. Domain-scoped ids (example.com:name) are not supported: the function URLs below are derived from the id."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a plain project id: 6-30 characters, lowercase letters, digits and hyphens."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, the source bucket and (unless overridden) the queue and the database."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud Functions region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (functions, topics, queue, service accounts), so several deployments can share a project."
  default     = "inboxsync"

  validation {
    # Service account ids are at most 30 characters and the longest suffix
    # used is "-tasks-invoker" (14), so the prefix may use 16.
    condition     = can(regex("^[a-z][a-z0-9-]{2,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-16 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every labelled resource (added to app=inboxsync and deployment=<name_prefix>)."
  default     = {}
}

variable "manage_project_services" {
  type        = bool
  description = "Enable the APIs the deployment needs. Turn off where APIs are managed elsewhere; they must then be enabled beforehand."
  default     = true
}

# --- Function sources ----------------------------------------------------------

variable "dist_dir" {
  type        = string
  description = "Folder that `make dist` built, holding one sub-folder per function. Default: build/dist at the repository root."
  default     = null
}

variable "source_retention_days" {
  type        = number
  description = "Days an uploaded source zip is kept in the bucket. A deployed function no longer needs its zip; Terraform uploads it again if it is needed."
  default     = 30

  validation {
    condition     = var.source_retention_days >= 1 && floor(var.source_retention_days) == var.source_retention_days
    error_message = "source_retention_days must be a whole number of days, at least 1."
  }
}

variable "log_level" {
  type        = string
  description = "Lowest severity the functions log."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

# --- Firestore -------------------------------------------------------------------

variable "firestore_database" {
  type        = string
  description = "Firestore database id. A database of its own keeps the TTL policies away from anyone else's collections; \"(default)\" is allowed."
  default     = "inboxsync"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  type        = string
  description = "Firestore location (a region such as us-central1, or a multi-region such as nam5). Default: the region. It cannot change once the database exists."
  default     = null
}

variable "firestore_delete_protection" {
  type        = bool
  description = "Refuse to delete the Firestore database (checkpoints and dedup records live there). Turn off only to tear a deployment down."
  default     = true
}

# --- Pub/Sub push ------------------------------------------------------------------

variable "ack_deadline_s" {
  type        = number
  description = "Ack deadline of the push subscription, which is also how long Pub/Sub waits for receive_push to answer; receive_push gets the same timeout."
  default     = 20

  validation {
    condition     = var.ack_deadline_s >= 10 && var.ack_deadline_s <= 60 && floor(var.ack_deadline_s) == var.ack_deadline_s
    error_message = "ack_deadline_s must be a whole number from 10 to 60."
  }
}

variable "push_min_backoff_s" {
  type        = number
  description = "Shortest wait before Pub/Sub pushes a message again after a NACK (503 or timeout)."
  default     = 10

  validation {
    condition     = var.push_min_backoff_s >= 0 && var.push_min_backoff_s <= 600
    error_message = "push_min_backoff_s must be from 0 to 600."
  }
}

variable "push_max_backoff_s" {
  type        = number
  description = "Longest wait between two pushes of the same message; must not be below push_min_backoff_s."
  default     = 600

  validation {
    condition     = var.push_max_backoff_s >= 0 && var.push_max_backoff_s <= 600
    error_message = "push_max_backoff_s must be from 0 to 600."
  }
}

variable "push_max_delivery_attempts" {
  type        = number
  description = "Push attempts before Pub/Sub moves a notification to the dead-letter topic."
  default     = 10

  validation {
    condition     = var.push_max_delivery_attempts >= 5 && var.push_max_delivery_attempts <= 100 && floor(var.push_max_delivery_attempts) == var.push_max_delivery_attempts
    error_message = "push_max_delivery_attempts must be a whole number from 5 to 100 (the Pub/Sub limits)."
  }
}

variable "push_event_ttl_days" {
  type        = number
  description = "Days a push-event dedup marker is kept. Keep it at least the 7-day message retention of the push subscription, or a late redelivery is no longer recognised."
  default     = 7

  validation {
    condition     = var.push_event_ttl_days >= 1 && var.push_event_ttl_days <= 31 && floor(var.push_event_ttl_days) == var.push_event_ttl_days
    error_message = "push_event_ttl_days must be a whole number from 1 to 31."
  }
}

variable "dead_letter_retention_days" {
  type        = number
  description = "Days an undelivered notification stays in the dead-letter subscription, waiting to be looked at."
  default     = 7

  validation {
    condition     = var.dead_letter_retention_days >= 1 && var.dead_letter_retention_days <= 7 && floor(var.dead_letter_retention_days) == var.dead_letter_retention_days
    error_message = "dead_letter_retention_days must be a whole number from 1 to 7 (the Pub/Sub subscription limit)."
  }
}

# --- Cloud Tasks ---------------------------------------------------------------------

variable "tasks_location" {
  type        = string
  description = "Location of the Cloud Tasks queue. Default: the region."
  default     = null
}

variable "task_max_attempts" {
  type        = number
  description = "Attempts of one sync task before run_sync records it as a dead letter and acknowledges it."
  default     = 10

  validation {
    condition     = var.task_max_attempts >= 1 && var.task_max_attempts <= 100 && floor(var.task_max_attempts) == var.task_max_attempts
    error_message = "task_max_attempts must be a whole number from 1 to 100."
  }
}

variable "task_min_backoff_s" {
  type        = number
  description = "Shortest wait before Cloud Tasks retries a failed sync task."
  default     = 5

  validation {
    condition     = var.task_min_backoff_s >= 0.1 && var.task_min_backoff_s <= 3600
    error_message = "task_min_backoff_s must be from 0.1 to 3600."
  }
}

variable "task_max_backoff_s" {
  type        = number
  description = "Longest wait between two attempts of a sync task; must not be below task_min_backoff_s."
  default     = 300

  validation {
    condition     = var.task_max_backoff_s >= 0.1 && var.task_max_backoff_s <= 3600
    error_message = "task_max_backoff_s must be from 0.1 to 3600."
  }
}

variable "task_max_doublings" {
  type        = number
  description = "How many times the retry wait doubles before it grows linearly."
  default     = 4

  validation {
    condition     = var.task_max_doublings >= 0 && var.task_max_doublings <= 16 && floor(var.task_max_doublings) == var.task_max_doublings
    error_message = "task_max_doublings must be a whole number from 0 to 16."
  }
}

variable "task_max_dispatches_per_second" {
  type        = number
  description = "Most sync tasks the queue starts per second, across all mailboxes."
  default     = 5

  validation {
    condition     = var.task_max_dispatches_per_second > 0 && var.task_max_dispatches_per_second <= 500
    error_message = "task_max_dispatches_per_second must be above 0 and at most 500."
  }
}

variable "task_max_concurrent_dispatches" {
  type        = number
  description = "Most sync tasks running at once; must not exceed run_sync_max_instances (each instance takes one request at a time)."
  default     = 10

  validation {
    condition     = var.task_max_concurrent_dispatches >= 1 && var.task_max_concurrent_dispatches <= 5000 && floor(var.task_max_concurrent_dispatches) == var.task_max_concurrent_dispatches
    error_message = "task_max_concurrent_dispatches must be a whole number from 1 to 5000."
  }
}

variable "task_log_sampling_ratio" {
  type        = number
  description = "Share of task dispatches Cloud Tasks writes to Cloud Logging (0 for none, 1 for all)."
  default     = 1

  validation {
    condition     = var.task_log_sampling_ratio >= 0 && var.task_log_sampling_ratio <= 1
    error_message = "task_log_sampling_ratio must be from 0 to 1."
  }
}

# --- Function sizing -----------------------------------------------------------------

variable "receive_push_memory_mb" {
  type        = number
  description = "Memory of one receive_push instance."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.receive_push_memory_mb)
    error_message = "receive_push_memory_mb must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "receive_push_min_instances" {
  type        = number
  description = "Instances of receive_push kept warm (0 scales to zero; 1 avoids cold starts eating into the ack deadline)."
  default     = 0

  validation {
    condition     = var.receive_push_min_instances >= 0 && var.receive_push_min_instances <= 100 && floor(var.receive_push_min_instances) == var.receive_push_min_instances
    error_message = "receive_push_min_instances must be a whole number from 0 to 100."
  }
}

variable "receive_push_max_instances" {
  type        = number
  description = "Most receive_push instances at once."
  default     = 20

  validation {
    condition     = var.receive_push_max_instances >= 1 && var.receive_push_max_instances <= 1000 && floor(var.receive_push_max_instances) == var.receive_push_max_instances
    error_message = "receive_push_max_instances must be a whole number from 1 to 1000."
  }
}

variable "run_sync_memory_mb" {
  type        = number
  description = "Memory of one run_sync instance."
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.run_sync_memory_mb)
    error_message = "run_sync_memory_mb must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "run_sync_max_instances" {
  type        = number
  description = "Most run_sync instances at once."
  default     = 10

  validation {
    condition     = var.run_sync_max_instances >= 1 && var.run_sync_max_instances <= 1000 && floor(var.run_sync_max_instances) == var.run_sync_max_instances
    error_message = "run_sync_max_instances must be a whole number from 1 to 1000."
  }
}

variable "run_sync_timeout_s" {
  type        = number
  description = "Longest one sync may run. Cloud Tasks waits at most 30 minutes for an HTTP target."
  default     = 540

  validation {
    condition     = var.run_sync_timeout_s >= 60 && var.run_sync_timeout_s <= 1800 && floor(var.run_sync_timeout_s) == var.run_sync_timeout_s
    error_message = "run_sync_timeout_s must be a whole number from 60 to 1800."
  }
}

variable "renew_watches_memory_mb" {
  type        = number
  description = "Memory of the renew_watches instance."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.renew_watches_memory_mb)
    error_message = "renew_watches_memory_mb must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "renew_watches_timeout_s" {
  type        = number
  description = "Longest one renewal run may take, all mailboxes together (one users.watch and one task each); also how long Cloud Scheduler waits for it."
  default     = 540

  validation {
    # Cloud Scheduler waits at most 30 minutes for an HTTP target.
    condition     = var.renew_watches_timeout_s >= 60 && var.renew_watches_timeout_s <= 1800 && floor(var.renew_watches_timeout_s) == var.renew_watches_timeout_s
    error_message = "renew_watches_timeout_s must be a whole number from 60 to 1800."
  }
}

# --- Watch renewal schedule ----------------------------------------------------------

variable "renew_watches_schedule" {
  type        = string
  description = "Cron schedule of the renew_watches run. Watches lapse after 7 days; mail whose notification Gmail dropped waits at most one interval for the catch-up sync."
  default     = "17 3 * * *"

  validation {
    condition     = length(split(" ", trimspace(var.renew_watches_schedule))) == 5
    error_message = "renew_watches_schedule must be a five-field cron expression such as \"17 3 * * *\"."
  }
}

variable "renew_watches_time_zone" {
  type        = string
  description = "Time zone (tz database name) the renew_watches schedule is read in."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.renew_watches_time_zone))
    error_message = "renew_watches_time_zone must be a tz database name such as Etc/UTC or Europe/Berlin."
  }
}

variable "renew_watches_retry_attempts" {
  type        = number
  description = "Retries Cloud Scheduler makes when a run answers 503 (some mailbox, Firestore or Cloud Tasks failed transiently)."
  default     = 3

  validation {
    condition     = var.renew_watches_retry_attempts >= 0 && var.renew_watches_retry_attempts <= 5 && floor(var.renew_watches_retry_attempts) == var.renew_watches_retry_attempts
    error_message = "renew_watches_retry_attempts must be a whole number from 0 to 5."
  }
}

variable "renew_watches_min_backoff_s" {
  type        = number
  description = "Wait before the first retry of a failed renewal run; it doubles up to 8 times this."
  default     = 60

  validation {
    condition     = var.renew_watches_min_backoff_s >= 5 && var.renew_watches_min_backoff_s <= 3600 && floor(var.renew_watches_min_backoff_s) == var.renew_watches_min_backoff_s
    error_message = "renew_watches_min_backoff_s must be a whole number from 5 to 3600."
  }
}

variable "watch_label_ids" {
  type        = list(string)
  description = "Gmail label ids each watch covers (labelIds of users.watch). Must match what `inboxsync mailboxes add` used."
  default     = ["INBOX"]

  validation {
    condition     = length(var.watch_label_ids) > 0 && alltrue([for label in var.watch_label_ids : can(regex("^[A-Za-z0-9_-]+$", label))])
    error_message = "watch_label_ids must hold at least one label id (letters, digits, '_' and '-')."
  }
}

# --- Product settings ----------------------------------------------------------------

variable "rules_file" {
  type        = string
  description = "Path of the rules file inside the deployed run_sync source (make dist ships the repository's rules.toml as rules.toml)."
  default     = "rules.toml"

  validation {
    condition     = length(var.rules_file) > 0 && !startswith(var.rules_file, "/")
    error_message = "rules_file must be a relative path inside the function source."
  }
}

variable "gmail_quota_units_per_minute" {
  type        = number
  description = "Gmail quota units one mailbox may spend per minute (Google's published per-user limit has been 15000; set it lower to leave room for other clients)."
  default     = 15000

  validation {
    condition     = var.gmail_quota_units_per_minute >= 100 && floor(var.gmail_quota_units_per_minute) == var.gmail_quota_units_per_minute
    error_message = "gmail_quota_units_per_minute must be a whole number of at least 100 (one users.watch costs 100)."
  }
}

variable "delegated_admin" {
  type        = string
  description = "Service account whose client id is authorised for domain-wide delegation in the Workspace admin console; its JWTs are signed through IAM signJwt (no key). Null means run_sync's own service account. Another account needs roles/iam.serviceAccountTokenCreator granted to run_sync and renew_watches on it."
  default     = null

  validation {
    condition     = var.delegated_admin == null || can(regex("^[^@\\s]+@[^@\\s]+\\.iam\\.gserviceaccount\\.com$", var.delegated_admin))
    error_message = "delegated_admin must be a service account e-mail (NAME@PROJECT.iam.gserviceaccount.com) or null."
  }
}

variable "oauth_secret_prefix" {
  type        = string
  description = "Name prefix of the Secret Manager secrets holding per-mailbox OAuth refresh tokens. When set, run_sync may read only those secrets; null lets it read every secret in the project."
  default     = null

  validation {
    condition     = var.oauth_secret_prefix == null || can(regex("^[A-Za-z0-9_-]{1,200}$", var.oauth_secret_prefix))
    error_message = "oauth_secret_prefix must be letters, digits, '-' and '_' (or null)."
  }
}

variable "run_sync_secret_env" {
  type        = map(string)
  description = "Environment variables of run_sync filled from Secret Manager (latest version), as NAME => secret id; e.g. the signing secret a forward action names in its `secret_env` field. The secrets must exist; run_sync gets read access to each."
  default     = {}

  validation {
    condition = alltrue([
      for name, secret in var.run_sync_secret_env :
      can(regex("^[A-Z_][A-Z0-9_]*$", name)) && !startswith(name, "INBOXSYNC_") && can(regex("^[A-Za-z0-9_-]{1,255}$", secret))
    ])
    error_message = "run_sync_secret_env keys must be UPPER_SNAKE_CASE names outside the INBOXSYNC_ namespace, values secret ids."
  }
}

# --- Alerts --------------------------------------------------------------------------

variable "alert_emails" {
  type        = list(string)
  description = "Addresses that get an e-mail notification channel for the alerts."
  default     = []

  validation {
    condition     = alltrue([for address in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", address))])
    error_message = "alert_emails must hold e-mail addresses."
  }
}

variable "alert_notification_channel_ids" {
  type        = list(string)
  description = "Existing notification channels (projects/P/notificationChannels/ID) that also get the alerts."
  default     = []
}

variable "error_alert_threshold_count" {
  type        = number
  description = "Error log lines (which include every dead letter) within alert_window_s above which the error alert fires."
  default     = 0

  validation {
    condition     = var.error_alert_threshold_count >= 0
    error_message = "error_alert_threshold_count must not be negative."
  }
}

variable "dead_letter_alert_threshold_count" {
  type        = number
  description = "Notifications waiting in the dead-letter subscription above which the dead-letter alert fires."
  default     = 0

  validation {
    condition     = var.dead_letter_alert_threshold_count >= 0
    error_message = "dead_letter_alert_threshold_count must not be negative."
  }
}

variable "alert_window_s" {
  type        = number
  description = "Window over which the alerts count error lines and look at the dead-letter backlog."
  default     = 300

  validation {
    condition     = var.alert_window_s >= 60 && var.alert_window_s <= 86400 && var.alert_window_s % 60 == 0
    error_message = "alert_window_s must be a whole number of minutes, from 60 to 86400 seconds."
  }
}
