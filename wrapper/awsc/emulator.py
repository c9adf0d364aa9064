"""The local EC2 API: moto's server, made to answer like EC2 where the playbooks rely on it.

Used by the tests and by the local cloud. Run as
``python -m awsc.emulator -H 127.0.0.1 -p PORT`` (moto_server's arguments); seed AMIs with
``MOTO_AMIS_PATH``.
"""

import sys


def _patch_moto() -> None:
    """Close the emulator gaps that differ from EC2 (not ones that merely simplify it)."""
    from moto.ec2.models import elastic_block_store

    # EC2 describes a volume made without a snapshot with SnapshotId "", moto leaves the key
    # out, and amazon.aws.ec2_vol_info then fails with KeyError 'snapshot_id'.
    original_init = elastic_block_store.Volume.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self.snapshot_id is None:
            self.snapshot_id = ""

    elastic_block_store.Volume.__init__ = init


def main(argv: list[str] | None = None) -> None:
    _patch_moto()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
