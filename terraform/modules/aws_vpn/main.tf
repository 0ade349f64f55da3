# AWS side of the HA VPN to GCP (the private alternative to Datastream's IP allowlist): one
# virtual private gateway, one customer gateway per GCP interface, two VPN connections = four
# tunnels with BGP, routes propagated into the private subnets.

resource "aws_vpn_gateway" "this" {
  vpc_id          = var.vpc_id
  amazon_side_asn = var.amazon_side_asn
  tags            = { Name = var.name }
}

resource "aws_vpn_gateway_route_propagation" "private" {
  count          = length(var.route_table_ids)
  vpn_gateway_id = aws_vpn_gateway.this.id
  route_table_id = var.route_table_ids[count.index]
}

resource "aws_customer_gateway" "gcp" {
  count      = 2
  bgp_asn    = var.gcp_bgp_asn
  ip_address = var.gcp_interface_ips[count.index]
  type       = "ipsec.1"
  tags       = { Name = "${var.name}-gcp-${count.index}" }
}

resource "aws_vpn_connection" "gcp" {
  count               = 2
  vpn_gateway_id      = aws_vpn_gateway.this.id
  customer_gateway_id = aws_customer_gateway.gcp[count.index].id
  type                = "ipsec.1"
  static_routes_only  = false
  tags                = { Name = "${var.name}-gcp-${count.index}" }
}

locals {
  # Four tunnels in a fixed order: connection 0 tunnel 1, connection 0 tunnel 2, connection 1 ...
  tunnels = flatten([
    for i, c in aws_vpn_connection.gcp : [
      {
        gcp_interface    = i
        outside_address  = c.tunnel1_address
        preshared_key    = c.tunnel1_preshared_key
        aws_inside_ip    = c.tunnel1_vgw_inside_address
        gcp_inside_ip    = c.tunnel1_cgw_inside_address
        inside_cidr_bits = 30
      },
      {
        gcp_interface    = i
        outside_address  = c.tunnel2_address
        preshared_key    = c.tunnel2_preshared_key
        aws_inside_ip    = c.tunnel2_vgw_inside_address
        gcp_inside_ip    = c.tunnel2_cgw_inside_address
        inside_cidr_bits = 30
      },
    ]
  ])
}
