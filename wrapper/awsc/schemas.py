"""The ``--json`` outputs of awsc: stable, documented here as JSON Schema (draft 2020-12).

Every ``--json`` output is one JSON document on stdout (keys sorted, 2-space indent); human text
goes to stderr or is absent. Fields are only ever added, never renamed or removed, within a major
version. Times are ISO 8601 in UTC; prices are USD (per hour unless the name says month).

- ``awsc ls --json``            -> :data:`LS`: a list of clusters.
- ``awsc status NAME --json``   -> :data:`STATUS`: one cluster, its nodes and the scheduler's view.
- ``awsc down NAME --json``     -> :data:`DOWN`: what still carries the cluster's tag, and its cost.
- ``awsc config show T --json`` -> :data:`CONFIG`: a template's resolved settings.
- ``awsc price --json``         -> :data:`PRICE`: the price table in use.
- ``awsc spot-history T --json``-> :data:`SPOT_HISTORY`: spot prices, newest first.
- ``awsc volume ls --json``     -> :data:`VOLUMES`: the volumes awsc made or adopted.
- ``awsc image ls --json``      -> :data:`IMAGES`: the baked images, oldest first.
- ``awsc bill --json``          -> :data:`BILL`: the month's cost by cluster, and the free tier.
- ``awsc up NAME --json``       -> ``{"estimate": ...}`` (:data:`ESTIMATE`) first; ``--dry-run``: only that.
"""

NUMBER = {"type": "number"}
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"type": ["string", "null"]}

NODE = {
    "type": "object",
    "required": [
        "node",
        "role",
        "instance_id",
        "instance_type",
        "state",
        "public_ip",
        "private_ip",
        "launched",
        "lifecycle",
        "user",
        "key_name",
        "zone",
        "image_id",
    ],
    "properties": {
        "node": STRING,
        "role": {"enum": ["master", "worker"]},
        "instance_id": STRING,
        "instance_type": STRING,
        "state": {"enum": ["pending", "running", "stopping", "stopped"]},
        "public_ip": NULLABLE_STRING,
        "private_ip": NULLABLE_STRING,
        "launched": STRING,
        "lifecycle": STRING,
        "user": STRING,
        "key_name": STRING,
        "zone": STRING,
        "image_id": STRING,
    },
}

CLUSTER = {
    "type": "object",
    "required": [
        "name",
        "region",
        "state",
        "nodes",
        "workers",
        "running",
        "master_instance_type",
        "worker_instance_types",
        "launched",
        "age_seconds",
        "cost_per_hour",
        "local",
        "aws_cost_per_hour",
    ],
    "properties": {
        # `awsc ls` only: why its guard ended or stopped it (idle, ttl, budget), when its master says.
        "ended_by": {"enum": ["idle", "ttl", "budget", None]},
        "name": STRING,
        "region": STRING,
        "state": {"enum": ["running", "stopped", "pending", "stopping", "mixed", "ended"]},
        "nodes": INTEGER,
        "workers": INTEGER,
        "running": INTEGER,
        "master_instance_type": NULLABLE_STRING,
        "worker_instance_types": {"type": "array", "items": STRING},
        "launched": NULLABLE_STRING,
        "age_seconds": {"type": ["integer", "null"]},
        # Instances (on-demand prices; spot at list price as an upper bound), IPv4 and EBS, now.
        "cost_per_hour": {"type": ["number", "null"]},
        # A cluster on the local cloud: free (cost_per_hour 0); aws_cost_per_hour is what it stands for.
        "local": {"type": "boolean"},
        "aws_cost_per_hour": {"type": ["number", "null"]},
    },
}

LS = {"type": "array", "items": CLUSTER}

STATUS = {
    "type": "object",
    "required": ["cluster", "nodes", "scheduler", "guard"],
    "properties": {
        "cluster": CLUSTER,
        "nodes": {"type": "array", "items": NODE},
        "scheduler": {
            "type": "object",
            "required": ["reachable", "output", "error", "nodes"],
            "properties": {
                "reachable": {"type": "boolean"},
                "output": NULLABLE_STRING,
                "error": NULLABLE_STRING,
                # Slurm's nodes with their power state (powered down, powering up, idle, allocated, down: why).
                "nodes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["node", "state", "power", "reason"],
                        "properties": {"node": STRING, "state": STRING, "power": STRING, "reason": STRING},
                    },
                },
            },
        },
        # `awsc-guard status` on the master: the time or money left (null: no guard, or not asked).
        "guard": NULLABLE_STRING,
    },
}

LEFTOVER = {
    "type": "object",
    "required": ["type", "id", "size_gib", "per_month"],
    "properties": {"type": {"enum": ["volume", "snapshot"]}, "id": STRING, "size_gib": INTEGER, "per_month": NUMBER},
}

IMAGES_BILL = {
    "type": "object",
    "required": ["count", "snapshot_gib", "per_month"],
    "properties": {"count": INTEGER, "snapshot_gib": INTEGER, "per_month": NUMBER},
}

DOWN = {
    "type": "object",
    "required": ["cluster", "region", "leftovers", "per_month", "images"],
    "properties": {
        "cluster": STRING,
        "region": STRING,
        "leftovers": {"type": "array", "items": LEFTOVER},
        "per_month": NUMBER,
        # awsc's images in the region: no cluster's, but they bill too (`awsc image ls`).
        "images": IMAGES_BILL,
    },
}

CONFIG = {
    "type": "object",
    "required": ["template", "chain", "settings"],
    "properties": {
        "template": NULLABLE_STRING,
        "chain": {"type": "array", "items": STRING},
        "settings": {
            "type": "object",
            "required": ["region", "workers", "master_instance_type", "worker_instance_type", "scheduler"],
            "properties": {"workers": INTEGER, "volume_size": INTEGER, "root_volume_size": INTEGER},
        },
    },
}

ESTIMATE = {
    "type": "object",
    "required": [
        "region",
        "per_hour",
        "per_month",
        "storage_gib",
        "storage_month",
        "unknown",
        "prices_taken",
        "elastic_workers",
        "most_per_hour",
        "lines",
    ],
    "properties": {
        "region": STRING,
        # With every node up (but no elastic worker), and the most it can cost: spot workers at their
        # maximum price and every elastic worker up.
        "per_hour": NUMBER,
        "most_per_hour": NUMBER,
        "elastic_workers": INTEGER,
        "per_month": NUMBER,
        "storage_gib": INTEGER,
        "storage_month": NUMBER,
        "unknown": {"type": "array", "items": STRING},
        "prices_taken": STRING,
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["what", "count", "unit", "per_hour", "note"],
                "properties": {
                    "what": STRING,
                    "count": INTEGER,
                    "unit": {"type": ["number", "null"]},
                    "per_hour": {"type": ["number", "null"]},
                    "note": STRING,
                },
            },
        },
    },
}

PRICE = {
    "type": "object",
    "required": [
        "taken",
        "source",
        "region",
        "instance_hour",
        "gp3_gib_month",
        "snapshot_gib_month",
        "public_ipv4_hour",
    ],
    "properties": {
        "taken": STRING,
        "source": STRING,
        "region": STRING,
        "instance_hour": {"type": "object", "additionalProperties": NUMBER},
        "gp3_gib_month": NUMBER,
        "snapshot_gib_month": NUMBER,
        "public_ipv4_hour": NUMBER,
    },
}

SPOT_HISTORY = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["zone", "instance_type", "price", "time"],
        "properties": {"zone": STRING, "instance_type": STRING, "price": NUMBER, "time": STRING},
    },
}

VOLUMES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "name", "cluster", "role", "size_gib", "zone", "state", "attached_to", "per_month"],
        "properties": {
            "id": STRING,
            "name": STRING,
            "cluster": STRING,
            "role": STRING,
            "size_gib": INTEGER,
            "zone": STRING,
            "state": STRING,
            "attached_to": {"type": "array", "items": STRING},
            "per_month": NUMBER,
        },
    },
}

IMAGES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "id", "created", "state", "digest", "matches", "snapshots", "snapshot_gib", "per_month"],
        "properties": {
            "name": STRING,
            "id": STRING,
            "created": STRING,
            "state": STRING,
            "digest": STRING,
            "collection": STRING,
            # Its digest is the installed roles': launches pick it by default.
            "matches": {"type": "boolean"},
            "snapshots": {"type": "array", "items": STRING},
            "snapshot_gib": INTEGER,
            "per_month": NUMBER,
        },
    },
}

BILL = {
    "type": "object",
    "required": ["bill", "free_tier"],
    "properties": {
        "bill": {
            "type": "object",
            "required": ["start", "end", "total_usd", "awsc_usd", "clusters", "untagged_usd", "estimated"],
            "properties": {
                "start": STRING,
                "end": STRING,
                "total_usd": NUMBER,
                "awsc_usd": NUMBER,
                "clusters": {"type": "object", "additionalProperties": NUMBER},
                "untagged_usd": NUMBER,
                "estimated": {"type": "boolean"},
            },
        },
        "free_tier": {
            "type": "object",
            "required": ["plan_type", "plan_status", "credits_usd", "expires", "usage", "error"],
            "properties": {
                "plan_type": NULLABLE_STRING,
                "plan_status": NULLABLE_STRING,
                "credits_usd": {"type": ["number", "null"]},
                "expires": NULLABLE_STRING,
                "usage": {"type": "array", "items": {"type": "object"}},
                "error": NULLABLE_STRING,
            },
        },
    },
}
