# hybridshop on AWS + GCP, composed from one module per concern:
#   AWS: network -> database -> bootstrap (migrations, users, publication, slot) -> API
#   GCP: registry -> web (Cloud Run) ; analytics (BigQuery + Datastream)
#   between the clouds: Datastream IP allowlist (default) or HA VPN + private connectivity.
# `hybridshop deploy` runs everything (package, registry + image build, apply); the steps it
# wraps are in docs/deploy.md. Terraform refuses missing, stale or mismatched artifacts.

locals {
  private_vpn = var.datastream_connectivity == "private_vpn"

  build_dir = coalesce(var.build_dir, "${path.root}/../build")
  # One root CA (Datastream documents one), the region's root for the instance's CA identifier,
  # extracted from AWS's bundle by `hybridshop package`.
  rds_ca_certificate_path = coalesce(var.rds_ca_certificate_path, "${local.build_dir}/rds-ca/${var.aws_region}/${var.db_ca_cert_identifier}.pem")

  # Same value as hybridshop.packaging.lambda_zip.source_digest(): zips built from other
  # sources than this checkout fail the plan (aws_api / aws_bootstrap preconditions).
  package_dir   = "${path.root}/../src/hybridshop"
  source_digest = sha256(join("\n", [for f in sort(fileset(local.package_dir, "**/*.{py,sql}")) : "${f}:${filesha256("${local.package_dir}/${f}")}"]))

  # The image `hybridshop deploy` built from build/cloudrun (content-addressed tag).
  image_tag_file = "${local.build_dir}/cloudrun/IMAGE_TAG"
  shop_image     = var.shop_image != null ? var.shop_image : "${module.registry.repository_url}/shop:${fileexists(local.image_tag_file) ? trimspace(file(local.image_tag_file)) : "not-built"}"

  # BigQuery next to Datastream: the region itself unless a location is given (validated).
  bigquery_location = coalesce(var.bigquery_location, var.gcp_region)

  # The bootstrap runs again whenever a migration file is added or changed.
  migrations_dir  = "${path.root}/../src/hybridshop/db/migrations"
  migrations_hash = sha256(join("\n", [for f in sort(fileset(local.migrations_dir, "*.sql")) : "${f}:${filesha256("${local.migrations_dir}/${f}")}"]))

  # Mirrors hybridshop.lambda_functions.FUNCTIONS (a test keeps them equal).
  api_functions = {
    GetProducts = {
      handler     = "hybridshop.lambda_functions.get_products.handler"
      routes      = ["GET /products", "GET /products/{id}", "GET /categories"]
      timeout_s   = 10
      memory_mb   = 256
      description = "List, get and count catalog products"
    }
    GetItem = {
      handler     = "hybridshop.lambda_functions.get_item.handler"
      routes      = ["POST /products/{id}/purchase"]
      timeout_s   = 10
      memory_mb   = 256
      description = "Purchase one product (simulated, at most once)"
    }
    AddProduct = {
      handler     = "hybridshop.lambda_functions.add_product.handler"
      routes      = ["POST /products"]
      timeout_s   = 10
      memory_mb   = 256
      description = "Add a product to the catalog"
    }
  }

  # HA VPN option: the Cloud Router's ASN and the GCP /29 Datastream peers into.
  gcp_bgp_asn         = 65010
  datastream_vpn_cidr = "10.60.255.0/29"

  # cloudresourcemanager and serviceusage must already be on before Terraform can manage the
  # others (one-time setup, docs/deploy.md; `hybridshop deploy check` tests it): listed so
  # they stay on.
  gcp_services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "datastream.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ]
}

# The seed README's db_password: RDS keeps the master password itself (Secrets Manager), so the
# value becomes the password of the Datastream replication user. Said on every plan.
check "db_password_use" {
  assert {
    condition     = nonsensitive(var.db_password == null)
    error_message = "db_password is set: it is used as the password of the Datastream replication user (stored in Secrets Manager, set on the role by the bootstrap). The RDS master password is generated and rotated by RDS in Secrets Manager; nobody needs it."
  }
}

check "shop_image_built" {
  assert {
    condition     = var.shop_image != null || fileexists(local.image_tag_file)
    error_message = "No shop image: run `hybridshop deploy` (it builds the image with Cloud Build) or set shop_image."
  }
}

check "replication_slot" {
  assert {
    condition     = module.bootstrap.replication_slot_status != "lost"
    error_message = "The replication slot was invalidated (WAL past max_slot_wal_keep_size): Datastream cannot continue. Re-run with db_repair_lost_slot = true, then start a backfill of the stream (docs/deploy.md, \"Lost replication slot\")."
  }
}

check "analytics_views" {
  assert {
    condition     = length(module.analytics.views_pending) == 0
    error_message = "BigQuery views waiting for Datastream's first backfill (created as placeholders): ${join(", ", module.analytics.views_pending)}. Run `terraform apply` (or `hybridshop deploy`) again once the tables exist."
  }
}

resource "google_project_service" "this" {
  for_each           = toset(local.gcp_services)
  project            = var.gcp_project_id
  service            = each.value
  disable_on_destroy = false
}

# Datastream's published source IPs for the region (never a hard-coded list).
data "google_datastream_static_ips" "this" {
  count    = local.private_vpn ? 0 : 1
  project  = var.gcp_project_id
  location = var.gcp_region

  depends_on = [google_project_service.this]
}

module "network" {
  source = "./modules/aws_network"

  name                    = var.name
  public_subnets_enabled  = !local.private_vpn
  flow_log_retention_days = var.log_retention_days
}

module "database" {
  source = "./modules/aws_database"

  name                      = var.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = local.private_vpn ? module.network.private_subnet_ids : module.network.public_subnet_ids
  publicly_accessible       = !local.private_vpn
  engine_version            = var.db_engine_version
  instance_class            = var.db_instance_class
  multi_az                  = var.db_multi_az
  backup_retention_days     = var.db_backup_retention_days
  deletion_protection       = var.db_deletion_protection
  skip_final_snapshot       = var.db_skip_final_snapshot
  client_security_group_ids = [module.network.lambda_security_group_id]
  # Unknown at plan on a one-shot apply (the data source waits for the API enablement): the
  # module takes it into a prefix list, which tolerates that.
  allowed_cidrs      = local.private_vpn ? [local.datastream_vpn_cidr] : [for ip in data.google_datastream_static_ips.this[0].static_ips : "${ip}/32"]
  ca_cert_identifier = var.db_ca_cert_identifier
  alarm_email        = var.alarm_email
  log_retention_days = var.log_retention_days
}

module "bootstrap" {
  source = "./modules/aws_bootstrap"

  name               = var.name
  zip_path           = "${local.build_dir}/lambda/Bootstrap.zip"
  manifest_path      = "${local.build_dir}/lambda/manifest.json"
  source_digest      = local.source_digest
  runtime            = var.lambda_runtime
  architecture       = var.lambda_architecture
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.network.lambda_security_group_id]
  db_host            = module.database.address
  db_port            = module.database.port
  db_name            = module.database.db_name
  master_secret_arn  = module.database.master_user_secret_arn
  migrations_hash    = local.migrations_hash
  log_retention_days = var.log_retention_days

  db_resource_id        = module.database.resource_id
  db_ingress_rule_ids   = module.database.client_ingress_rule_ids
  datastream_password   = var.db_password
  repair_lost_slot      = var.db_repair_lost_slot
  report_server_address = local.private_vpn

  # The function reaches Secrets Manager through the interface endpoint.
  depends_on = [module.network]
}

module "api" {
  source = "./modules/aws_api"

  name                   = var.name
  functions              = { for k, f in local.api_functions : k => merge(f, { zip_path = "${local.build_dir}/lambda/${k}.zip" }) }
  manifest_path          = "${local.build_dir}/lambda/manifest.json"
  source_digest          = local.source_digest
  runtime                = var.lambda_runtime
  architecture           = var.lambda_architecture
  subnet_ids             = module.network.private_subnet_ids
  security_group_ids     = [module.network.lambda_security_group_id]
  db_host                = module.database.address
  db_port                = module.database.port
  db_name                = module.database.db_name
  db_user                = module.bootstrap.app_db_user
  db_resource_id         = module.database.resource_id
  allowed_callers        = [module.web.service_account_email, module.web.service_account_unique_id]
  jwt_audience           = var.api_audience
  log_retention_days     = var.log_retention_days
  throttling_rate_limit  = var.api_throttling_rate_limit
  throttling_burst_limit = var.api_throttling_burst_limit
}

module "registry" {
  source = "./modules/gcp_registry"

  project_id    = var.gcp_project_id
  region        = var.gcp_region
  name          = var.name
  repository_id = var.name

  depends_on = [google_project_service.this]
}

module "web" {
  source = "./modules/gcp_web"

  project_id      = var.gcp_project_id
  region          = var.gcp_region
  name            = "${var.name}-web"
  image           = local.shop_image
  concurrency     = var.shop_concurrency
  api_base_url    = module.api.api_endpoint
  api_audience    = var.api_audience
  public          = var.shop_public
  invoker_members = var.shop_invoker_members

  depends_on = [google_project_service.this]
}

module "aws_vpn" {
  source = "./modules/aws_vpn"
  count  = local.private_vpn ? 1 : 0

  name              = var.name
  vpc_id            = module.network.vpc_id
  route_table_ids   = module.network.private_route_table_ids
  gcp_interface_ips = module.gcp_vpn[0].interface_ips
  gcp_bgp_asn       = local.gcp_bgp_asn
}

module "gcp_vpn" {
  source = "./modules/gcp_vpn"
  count  = local.private_vpn ? 1 : 0

  project_id      = var.gcp_project_id
  region          = var.gcp_region
  name            = var.name
  bgp_asn         = local.gcp_bgp_asn
  datastream_cidr = local.datastream_vpn_cidr
  aws_asn         = module.aws_vpn[0].amazon_side_asn
  aws_tunnels     = module.aws_vpn[0].tunnels
}

module "analytics" {
  source = "./modules/gcp_analytics"

  project_id       = var.gcp_project_id
  region           = var.gcp_region
  name             = var.name
  dataset_id       = replace(var.name, "-", "_")
  dataset_location = local.bigquery_location
  views_dir        = "${path.root}/../analytics/bigquery"
  # Private connectivity cannot resolve DNS: the address the instance serves from now, read by
  # the bootstrap's check on every plan (it changes on failover; the next apply follows it).
  db_host                 = local.private_vpn ? module.bootstrap.server_address : module.database.address
  db_port                 = module.database.port
  db_name                 = module.database.db_name
  db_user                 = module.bootstrap.datastream_db_user
  db_password             = module.bootstrap.datastream_password
  rds_ca_certificate      = fileexists(local.rds_ca_certificate_path) ? file(local.rds_ca_certificate_path) : ""
  publication             = module.bootstrap.publication
  replication_slot        = module.bootstrap.replication_slot
  data_freshness          = var.datastream_data_freshness
  private_connectivity    = local.private_vpn
  private_network_id      = local.private_vpn ? module.gcp_vpn[0].network_id : null
  private_connection_cidr = local.datastream_vpn_cidr

  # In private_vpn mode Datastream must not connect before the tunnels and BGP sessions are up.
  depends_on = [google_project_service.this, module.gcp_vpn, module.aws_vpn]
}
