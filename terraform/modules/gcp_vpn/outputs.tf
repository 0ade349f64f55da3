output "network_id" {
  description = "ID of the GCP VPC (Datastream private connectivity peers with it)."
  value       = google_compute_network.this.id
}

output "interface_ips" {
  description = "Public IPs of the two HA VPN interfaces (AWS customer gateways)."
  value       = google_compute_ha_vpn_gateway.this.vpn_interfaces[*].ip_address
}
