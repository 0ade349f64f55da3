# GCP side of the HA VPN: a VPC, an HA VPN gateway, a Cloud Router that advertises the
# Datastream /29 to AWS, and four tunnels with BGP sessions to the AWS tunnels.

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = "${var.name}-net"
  auto_create_subnetworks = false
  routing_mode            = "GLOBAL"
}

resource "google_compute_subnetwork" "this" {
  project                  = var.project_id
  name                     = "${var.name}-subnet"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing in this VPC serves anything: deny all ingress explicitly (Datastream's peering and the
# VPN tunnels carry only traffic towards AWS).
resource "google_compute_firewall" "deny_ingress" {
  project   = var.project_id
  name      = "${var.name}-deny-all-ingress"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_ha_vpn_gateway" "this" {
  project = var.project_id
  name    = "${var.name}-ha-vpn"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router" "this" {
  project = var.project_id
  name    = "${var.name}-router"
  region  = var.region
  network = google_compute_network.this.id

  bgp {
    asn               = var.bgp_asn
    advertise_mode    = "CUSTOM"
    advertised_groups = ["ALL_SUBNETS"]

    advertised_ip_ranges {
      range       = var.datastream_cidr
      description = "Datastream private connectivity"
    }
  }
}

resource "google_compute_external_vpn_gateway" "aws" {
  project         = var.project_id
  name            = "${var.name}-aws"
  redundancy_type = "FOUR_IPS_REDUNDANCY"

  dynamic "interface" {
    for_each = range(4)
    content {
      id         = interface.value
      ip_address = nonsensitive(var.aws_tunnels[interface.value].outside_address)
    }
  }
}

resource "google_compute_vpn_tunnel" "aws" {
  count                           = 4
  project                         = var.project_id
  name                            = "${var.name}-aws-${count.index}"
  region                          = var.region
  vpn_gateway                     = google_compute_ha_vpn_gateway.this.id
  vpn_gateway_interface           = var.aws_tunnels[count.index].gcp_interface
  peer_external_gateway           = google_compute_external_vpn_gateway.aws.id
  peer_external_gateway_interface = count.index
  shared_secret                   = var.aws_tunnels[count.index].preshared_key
  router                          = google_compute_router.this.id
  ike_version                     = 2
}

resource "google_compute_router_interface" "aws" {
  count      = 4
  project    = var.project_id
  name       = "${var.name}-aws-${count.index}"
  region     = var.region
  router     = google_compute_router.this.name
  ip_range   = "${var.aws_tunnels[count.index].gcp_inside_ip}/${var.aws_tunnels[count.index].inside_cidr_bits}"
  vpn_tunnel = google_compute_vpn_tunnel.aws[count.index].name
}

resource "google_compute_router_peer" "aws" {
  count           = 4
  project         = var.project_id
  name            = "${var.name}-aws-${count.index}"
  region          = var.region
  router          = google_compute_router.this.name
  interface       = google_compute_router_interface.aws[count.index].name
  peer_ip_address = var.aws_tunnels[count.index].aws_inside_ip
  peer_asn        = var.aws_asn
}
