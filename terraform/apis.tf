# The Google APIs the deployment and the running product use.

locals {
  project_services = toset([
    "artifactregistry.googleapis.com", # function images built from source
    "cloudbuild.googleapis.com",       # builds the function images
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com", # runs renew_watches daily
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "gmail.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # signJwt for keyless domain-wide delegation
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com", # gen2 functions run as Cloud Run services
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = var.manage_project_services ? local.project_services : toset([])

  project = var.project_id
  service = each.key

  # Other workloads in the project may use the same APIs: never switch them
  # off when this deployment is destroyed.
  disable_on_destroy         = false
  disable_dependent_services = false
}
