# The Firestore database (native mode) and the TTL policies that let the
# dedup records expire on their own.

resource "google_firestore_database" "main" {
  name        = var.firestore_database
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"

  # Mailbox leases and checkpoints are read-modify-write transactions; the
  # server client relies on pessimistic locking for them.
  concurrency_mode = "PESSIMISTIC"

  delete_protection_state = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # `terraform destroy` leaves the data alone unless protection was turned
  # off first; then it deletes the database for real.
  deletion_policy = var.firestore_delete_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.enabled]
}

locals {
  # Collection groups whose documents carry an `expiresAt` Timestamp.
  # Firestore deletes them some time (usually within a day) after that
  # moment, so readers still compare expiresAt themselves.
  ttl_collection_groups = toset(["push_events", "processed_messages", "actions"])
}

resource "google_firestore_field" "expires_at" {
  for_each = local.ttl_collection_groups

  database   = google_firestore_database.main.name
  collection = each.key
  field      = "expiresAt"

  ttl_config {}

  # Empty: exempt the field from single-field indexing. Nothing queries it,
  # and an index on an ever-growing timestamp only adds write cost.
  index_config {}
}
