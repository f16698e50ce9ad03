"""Which consolidation partition a debtor belongs to, computed alike in Python and PostgreSQL.

A large import is consolidated in several transactions at once, one per partition of its
debtors, each on its own connection (so on its own core). The parser processes route each staged
row to its partition; PostgreSQL routes the debtors a file no longer lists (full snapshot) with
the same function: the first two bytes of the MD5 of the debtor id's UTF-8 text, big-endian,
modulo the number of partitions. `hashtext` would be cheaper in SQL but has no Python twin.
"""

import hashlib


def partition_of(debtor_id: str, partitions: int) -> int:
    if partitions == 1:
        return 0
    digest = hashlib.md5(debtor_id.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:2], "big") % partitions


def partition_sql(debtor_id: str) -> str:
    """The SQL expression of `partition_of` over the column `debtor_id`, with the number of
    partitions in the bind parameter `:partitions`."""
    return (
        f"('x' || substr(md5({debtor_id}), 1, 4))::bit(16)::integer % CAST(:partitions AS integer)"
    )
