# hybridshop on AWS + GCP, composed from one module per concern:
#   AWS: network -> database -> bootstrap (migrations, users, publication, slot) -> API
#   GCP: registry -> web (Cloud Run) ; analytics (BigQuery + Datastream)
#   between the clouds: Datastream IP allowlist (default) or HA VPN + private connectivity.
# Build the artifacts first: `hybridshop package` (see docs/deploy.md).

locals {
  private_vpn = var.datastream_connectivity == "private_vpn"

  build_dir      = coalesce(var.lambda_build_dir, "${path.root}/../build/lambda")
  ca_bundle_path = coalesce(var.rds_ca_bundle_path, "${path.root}/../src/hybridshop/db/certs/rds-global-bundle.pem")

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

  gcp_services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "compute.googleapis.com",
    "datastream.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
  ]
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
  allowed_cidrs             = local.private_vpn ? [local.datastream_vpn_cidr] : [for ip in data.google_datastream_static_ips.this[0].static_ips : "${ip}/32"]
  lookup_private_ip         = local.private_vpn
  alarm_email               = var.alarm_email
}

module "bootstrap" {
  source = "./modules/aws_bootstrap"

  name               = var.name
  zip_path           = "${local.build_dir}/Bootstrap.zip"
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

  # The function reaches Secrets Manager through the interface endpoint.
  depends_on = [module.network]
}

module "api" {
  source = "./modules/aws_api"

  name                   = var.name
  functions              = { for k, f in local.api_functions : k => merge(f, { zip_path = "${local.build_dir}/${k}.zip" }) }
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

  project_id = var.gcp_project_id
  region     = var.gcp_region

  depends_on = [google_project_service.this]
}

module "web" {
  source = "./modules/gcp_web"

  project_id      = var.gcp_project_id
  region          = var.gcp_region
  name            = "${var.name}-web"
  image           = var.shop_image
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

  project_id              = var.gcp_project_id
  region                  = var.gcp_region
  dataset_location        = var.bigquery_location
  db_host                 = local.private_vpn ? module.database.private_ip : module.database.address
  db_port                 = module.database.port
  db_name                 = module.database.db_name
  db_user                 = module.bootstrap.datastream_db_user
  db_password             = module.bootstrap.datastream_password
  rds_ca_certificate      = file(local.ca_bundle_path)
  publication             = module.bootstrap.publication
  replication_slot        = module.bootstrap.replication_slot
  data_freshness          = var.datastream_data_freshness
  private_connectivity    = local.private_vpn
  private_network_id      = local.private_vpn ? module.gcp_vpn[0].network_id : null
  private_connection_cidr = local.datastream_vpn_cidr

  depends_on = [google_project_service.this]
}
