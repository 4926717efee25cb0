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
    # 1 -> 2: lifecycle (owner, power, deploy choices, deadlines, commissioning
    # inventory), per-script commissioning results, operator API keys.
    """
    ALTER TABLE nodes ADD COLUMN owner TEXT;
    ALTER TABLE nodes ADD COLUMN owner_data TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE nodes ADD COLUMN agent_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE nodes ADD COLUMN zone TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE nodes ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE nodes ADD COLUMN architecture TEXT NOT NULL DEFAULT 'amd64/generic';
    ALTER TABLE nodes ADD COLUMN power_type TEXT NOT NULL DEFAULT 'manual';
    ALTER TABLE nodes ADD COLUMN power_parameters TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE nodes ADD COLUMN power_state TEXT NOT NULL DEFAULT 'unknown';
    ALTER TABLE nodes ADD COLUMN osystem TEXT NOT NULL DEFAULT '';
    ALTER TABLE nodes ADD COLUMN distro_series TEXT NOT NULL DEFAULT '';
    ALTER TABLE nodes ADD COLUMN user_data BLOB;
    ALTER TABLE nodes ADD COLUMN status_message TEXT NOT NULL DEFAULT '';
    ALTER TABLE nodes ADD COLUMN status_deadline REAL;
    ALTER TABLE nodes ADD COLUMN hardware TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX nodes_by_deadline ON nodes(status_deadline) WHERE status_deadline IS NOT NULL;
    CREATE TABLE script_results (
        system_id   TEXT NOT NULL REFERENCES nodes(system_id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        exit_status INTEGER NOT NULL,
        output      BLOB NOT NULL,
        time        REAL NOT NULL,
        PRIMARY KEY (system_id, name)
    );
    CREATE TABLE api_keys (
        consumer_key TEXT NOT NULL,
        token_key    TEXT PRIMARY KEY,
        token_secret TEXT NOT NULL,
        username     TEXT NOT NULL,
        name         TEXT NOT NULL DEFAULT '',
        created      REAL NOT NULL
    );
    """,
    # 2 -> 3: operator accounts for the web UI (scrypt hashes, see netboot/http/ui/auth.py).
    """
    CREATE TABLE users (
        username      TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created       REAL NOT NULL,
        last_login    REAL
    );
    """,
    # leases v2 (DHCP, netboot/store/leases.py): keyed by client identifier (option 61,
    # else 01+MAC), with state (active/released/expired/declined/conflict), subnet and
    # relay option 82; DHCP alarms (rogue servers seen on served interfaces).
    """
    CREATE TABLE leases_v2 (
        client_id   TEXT PRIMARY KEY,
        mac         TEXT NOT NULL,
        ip          TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL,
        expires     REAL NOT NULL,
        hostname    TEXT NOT NULL DEFAULT '',
        subnet      TEXT NOT NULL DEFAULT '',
        relay       TEXT NOT NULL DEFAULT '',
        updated     REAL NOT NULL
    );
    INSERT INTO leases_v2 (client_id, mac, ip, state, expires, hostname, updated)
        SELECT '01' || replace(mac, ':', ''), mac, ip, 'active', expires, hostname, updated
        FROM leases;
    DROP TABLE leases;
    ALTER TABLE leases_v2 RENAME TO leases;
    CREATE INDEX leases_by_mac ON leases(mac);
    CREATE TABLE dhcp_alarms (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        time        REAL NOT NULL,
        interface   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        server_ip   TEXT NOT NULL DEFAULT '',
        server_mac  TEXT NOT NULL DEFAULT '',
        message     TEXT NOT NULL DEFAULT ''
    );
    """,
    # deployments (netboot/store/deploy.py): the images a deploy episode pinned, the
    # installer's stage and log; operators' SSH keys for deployed nodes.
    """
    CREATE TABLE deployments (
        system_id   TEXT PRIMARY KEY REFERENCES nodes(system_id) ON DELETE CASCADE,
        episode     REAL NOT NULL,
        method      TEXT NOT NULL,
        image       TEXT NOT NULL DEFAULT '',
        installer   TEXT NOT NULL DEFAULT '',
        stage       TEXT NOT NULL,
        installed   REAL,
        started     REAL NOT NULL,
        updated     REAL NOT NULL,
        log         BLOB NOT NULL DEFAULT x''
    );
    CREATE TABLE ssh_keys (
        username    TEXT NOT NULL,
        key         TEXT NOT NULL,
        created     REAL NOT NULL,
        PRIMARY KEY (username, key)
    );
    """,
    # DHCP pins (netboot/store/leases.py): a fixed address for a MAC, set from the CLI
    # or by the node store, honoured like a configured host reservation.
    """
    CREATE TABLE dhcp_pins (
        mac         TEXT PRIMARY KEY,
        ip          TEXT NOT NULL UNIQUE,
        hostname    TEXT NOT NULL DEFAULT '',
        updated     REAL NOT NULL
    );
    """,
    # disk erasures (netboot/store/erase.py): the mode a release asked for, and the erase
    # environment's verdict and log.
    """
    CREATE TABLE erasures (
        system_id   TEXT PRIMARY KEY REFERENCES nodes(system_id) ON DELETE CASCADE,
        mode        TEXT NOT NULL,
        started     REAL NOT NULL,
        finished    REAL,
        ok          INTEGER,
        log         BLOB NOT NULL DEFAULT x''
    );
    """,
    # DHCP leases: no index by MAC. Every new lease dirtied a random page of it, about
    # half the WAL bytes (and pwrite calls) of each group commit; `netboot leases --mac`
    # scans the table instead (50k rows: a few ms). See docs/dhcp.md "Performance".
    """
    DROP INDEX IF EXISTS leases_by_mac;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
