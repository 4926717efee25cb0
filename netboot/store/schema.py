"""Versioned schema migrations. Index i of MIGRATIONS takes the schema from i to i+1.

``PRAGMA user_version`` records the version; netboot refuses to open a database whose
version is newer than the newest it knows (a downgrade would corrupt data).
"""

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: nodes, their MACs, lifecycle events, DHCP leases.
    """
    CREATE TABLE nodes (
        system_id   TEXT PRIMARY KEY,
        hostname    TEXT NOT NULL UNIQUE,
        status      INTEGER NOT NULL,
        boot_mac    TEXT NOT NULL,
        uuid        TEXT,
        vendor      TEXT NOT NULL DEFAULT '',
        product     TEXT NOT NULL DEFAULT '',
        serial      TEXT NOT NULL DEFAULT '',
        cpu_count   INTEGER NOT NULL DEFAULT 0,
        cpu_model   TEXT NOT NULL DEFAULT '',
        memory_mib  INTEGER NOT NULL DEFAULT 0,
        disks       TEXT NOT NULL DEFAULT '[]',
        inventory   TEXT NOT NULL DEFAULT '{}',
        token       TEXT NOT NULL,
        created     REAL NOT NULL,
        updated     REAL NOT NULL
    );
    CREATE TABLE node_macs (
        mac         TEXT PRIMARY KEY,
        system_id   TEXT NOT NULL REFERENCES nodes(system_id) ON DELETE CASCADE
    );
    CREATE INDEX node_macs_by_node ON node_macs(system_id);
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        system_id   TEXT NOT NULL REFERENCES nodes(system_id) ON DELETE CASCADE,
        time        REAL NOT NULL,
        actor       TEXT NOT NULL,
        kind        TEXT NOT NULL,
        from_status INTEGER,
        to_status   INTEGER,
        message     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_node ON events(system_id, id);
    CREATE TABLE leases (
        mac         TEXT PRIMARY KEY,
        ip          TEXT NOT NULL UNIQUE,
        expires     REAL NOT NULL,
        hostname    TEXT NOT NULL DEFAULT '',
        updated     REAL NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
