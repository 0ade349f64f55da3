variable "name" {
  description = "Prefix of the VPN resources."
  type        = string
}

variable "vpc_id" {
  description = "VPC the virtual private gateway attaches to."
  type        = string
}

variable "route_table_ids" {
  description = "Route tables that learn the GCP routes over BGP."
  type        = list(string)
}

variable "gcp_interface_ips" {
  description = "Public IPs of the two GCP HA VPN gateway interfaces."
  type        = list(string)

  validation {
    condition     = length(var.gcp_interface_ips) == 2
    error_message = "An HA VPN gateway has exactly two interfaces."
  }
}

variable "gcp_bgp_asn" {
  description = "Private ASN of the GCP Cloud Router."
  type        = number
}

variable "amazon_side_asn" {
  description = "Private ASN of the AWS virtual private gateway."
  type        = number
  default     = 64512
}
