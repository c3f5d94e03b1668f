# NATS JetStream: the given nats_url, or a 3-node cluster created here (JetStream R3
# survives the loss of one node). Each node has a fixed network interface (so every node
# knows the others' route addresses before it boots) and its own encrypted EBS volume for
# the JetStream store, which outlives the instance.
#
# Changing the AMI or the boot script does not replace running nodes (ignore_changes):
# replace one node at a time (`terraform apply -replace='module.chatx.aws_instance.nats[0]'`,
# wait for the JetStream streams to be current again, then the next).

data "aws_ssm_parameter" "nats_ami" {
  count = local.create_nats ? 1 : 0
  name  = var.nats_ami_ssm_parameter
}

data "aws_subnet" "nats" {
  count = local.nats_nodes
  id    = element(var.private_subnet_ids, count.index)
}

resource "aws_network_interface" "nats" {
  count           = local.nats_nodes
  subnet_id       = data.aws_subnet.nats[count.index].id
  security_groups = [aws_security_group.nats[0].id]
  description     = "${var.name}-chatx-nats-${count.index}"
  tags            = merge(local.tags, { Name = "${var.name}-chatx-nats-${count.index}" })
}

resource "aws_ebs_volume" "nats" {
  count             = local.nats_nodes
  availability_zone = data.aws_subnet.nats[count.index].availability_zone
  size              = var.nats_volume_size_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = aws_kms_key.this.arn
  tags              = merge(local.tags, { Name = "${var.name}-chatx-nats-${count.index}-jetstream" })
}

locals {
  nats_routes = join(", ", [for eni in aws_network_interface.nats : "nats-route://${eni.private_ip}:6222"])

  # First-boot script of node i: mount its JetStream volume, install nats-server (checked
  # against the release's SHA256SUMS), write the cluster configuration, start the service.
  nats_user_data = [for i in range(local.nats_nodes) : <<-EOT
    #!/bin/bash
    set -euo pipefail
    VERSION="${var.nats_version}"
    VOLUME="${replace(aws_ebs_volume.nats[i].id, "-", "")}"
    DEVICE="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$VOLUME"

    # The volume is attached after the instance starts: wait for it.
    for _ in $(seq 1 120); do [ -e "$DEVICE" ] && break; sleep 5; done
    [ -e "$DEVICE" ] || { echo "JetStream volume $VOLUME not attached" >&2; exit 1; }
    blkid "$DEVICE" >/dev/null || mkfs.xfs "$DEVICE"
    mkdir -p /var/lib/nats
    grep -q " /var/lib/nats " /etc/fstab || echo "$DEVICE /var/lib/nats xfs defaults,nofail 0 2" >> /etc/fstab
    mountpoint -q /var/lib/nats || mount /var/lib/nats
    id nats >/dev/null 2>&1 || useradd --system --home-dir /var/lib/nats --shell /sbin/nologin nats
    chown nats:nats /var/lib/nats

    case "$(uname -m)" in aarch64) ARCH=arm64 ;; x86_64) ARCH=amd64 ;; *) exit 1 ;; esac
    TARBALL="nats-server-v$VERSION-linux-$ARCH.tar.gz"
    BASE="https://github.com/nats-io/nats-server/releases/download/v$VERSION"
    WORK="$(mktemp -d)"
    cd "$WORK"
    curl -fsSLO "$BASE/$TARBALL"
    curl -fsSLO "$BASE/SHA256SUMS"
    grep " $TARBALL\$" SHA256SUMS | sha256sum --check -
    tar -xzf "$TARBALL"
    install -m 0755 "nats-server-v$VERSION-linux-$ARCH/nats-server" /usr/local/bin/nats-server

    cat > /etc/nats-server.conf <<'CONF'
    server_name: ${var.name}-nats-${i}
    listen: 0.0.0.0:4222
    http: 127.0.0.1:8222
    jetstream {
      store_dir: /var/lib/nats/jetstream
      max_file_store: ${floor(var.nats_volume_size_gb * 0.9)}G
    }
    cluster {
      name: ${var.name}-chatx
      listen: 0.0.0.0:6222
      routes: [ ${local.nats_routes} ]
    }
    CONF

    cat > /etc/systemd/system/nats-server.service <<'UNIT'
    [Unit]
    Description=NATS server (ChatX JetStream)
    After=network-online.target var-lib-nats.mount
    Wants=network-online.target
    [Service]
    User=nats
    ExecStart=/usr/local/bin/nats-server --config /etc/nats-server.conf
    ExecReload=/bin/kill -HUP $MAINPID
    Restart=always
    RestartSec=2
    LimitNOFILE=1048576
    KillSignal=SIGUSR2
    TimeoutStopSec=60
    [Install]
    WantedBy=multi-user.target
    UNIT

    systemctl daemon-reload
    systemctl enable --now nats-server
  EOT
  ]
}

resource "aws_instance" "nats" {
  count                = local.nats_nodes
  ami                  = data.aws_ssm_parameter.nats_ami[0].value
  instance_type        = var.nats_instance_type
  iam_instance_profile = aws_iam_instance_profile.nats[0].name
  ebs_optimized        = true
  monitoring           = true
  user_data            = local.nats_user_data[count.index]

  primary_network_interface {
    network_interface_id = aws_network_interface.nats[count.index].id
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 16
    encrypted   = true
    kms_key_id  = aws_kms_key.this.arn
  }

  tags = merge(local.tags, { Name = "${var.name}-chatx-nats-${count.index}" })

  lifecycle {
    ignore_changes = [ami, user_data]
  }
}

resource "aws_volume_attachment" "nats" {
  count       = local.nats_nodes
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.nats[count.index].id
  instance_id = aws_instance.nats[count.index].id
}
