"""Consolidation of a staged import, done by PostgreSQL in one transaction.

A million rows are grouped, netted, compared with what the creditor said before, and turned into
`debt-imported` outbox rows without leaving the database: Python would move every row twice.
The payload JSON built here is exactly `recupero_events.DebtImported` (v2); the contract tests and
every consumer validate it against that model.

Inputs: the temporary table `staged` (validated rows of this import) and the parameters
`:import_id`, `:tenant_id`, `:as_of`, `:full_snapshot`, `:daily_rate` (NULL for no interest
accrual), `:source`, `:correlation_id`, `:partition` and `:partitions`.

Everything here is decided per debtor, so an import's debtors can be split into partitions
(`partitions.partition_of`), each consolidated by these same statements in a transaction of its
own: `staged` then holds the rows of one partition's debtors, and the only statement that looks
at debtors beyond `staged` (those a full snapshot no longer lists) keeps to the partition's.
"""

from sqlalchemy import Insert, Text, TextClause, bindparam, column, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from recupero_events import DebtImported, Topic, event_type_of
from recupero_ingest.adapters.partitions import partition_sql
from recupero_ingest.adapters.tables import schema
from recupero_runtime.outbox import insert_event_batches

CREATE_STAGED = (
    text(
        """
    CREATE TEMPORARY TABLE staged (
        row_number integer NOT NULL,
        debtor_id text NOT NULL,
        name text NOT NULL,
        email text,
        phone text,
        country text NOT NULL,
        time_zone text NOT NULL,
        locale text NOT NULL,
        document_id text NOT NULL,
        kind text NOT NULL,
        product text,
        issued_on date,
        due_on date NOT NULL,
        principal_minor bigint NOT NULL,
        interest_minor bigint NOT NULL,
        fees_minor bigint NOT NULL,
        currency text NOT NULL,
        zone text,
        customer_type text,
        risk_score text,
        attributes jsonb,
        source_digest bytea NOT NULL,
        postal_address jsonb
    ) ON COMMIT DROP
    """
    ),
    text(
        """
    CREATE TEMPORARY TABLE staged_rejections (
        row_number integer NOT NULL,
        field text NOT NULL,
        value text NOT NULL,
        reason text NOT NULL
    ) ON COMMIT DROP
    """
    ),
)

# Once unchanged debtors are gone: how many are left, for the plans of the joins below.
ANALYZE_FILE_DEBTORS = text("ANALYZE file_debtors")

STAGED_COLUMNS = (
    "row_number",
    "debtor_id",
    "name",
    "email",
    "phone",
    "country",
    "time_zone",
    "locale",
    "document_id",
    "kind",
    "product",
    "issued_on",
    "due_on",
    "principal_minor",
    "interest_minor",
    "fees_minor",
    "currency",
    "zone",
    "customer_type",
    "risk_score",
    "attributes",
    "source_digest",
    "postal_address",
)
REJECTION_COLUMNS = ("row_number", "field", "value", "reason")

# Rows that contradict earlier rows of the same file: a document listed twice, or a debtor whose
# documents come in two currencies (a balance has one currency). The first row wins.
REJECT_CONFLICTS = text(
    """
    WITH ranked AS (
        SELECT ctid AS row_id, row_number, debtor_id, document_id, currency,
               first_value(row_number) OVER same_document AS first_row,
               first_value(currency) OVER same_debtor AS debtor_currency
        FROM staged
        WINDOW same_document AS (PARTITION BY debtor_id, document_id ORDER BY row_number),
               same_debtor AS (PARTITION BY debtor_id ORDER BY row_number)
    ), existing AS (
        SELECT debtor_id, currency FROM ingest.debtors WHERE tenant_id = :tenant_id
    ), bad AS (
        SELECT r.row_id, r.row_number,
               CASE WHEN r.first_row <> r.row_number THEN 'document_id' ELSE 'currency' END AS field,
               CASE WHEN r.first_row <> r.row_number THEN r.document_id ELSE r.currency END AS value,
               CASE
                   WHEN r.first_row <> r.row_number THEN
                       'document ' || r.document_id || ' of debtor ' || r.debtor_id
                       || ' is already at row ' || r.first_row
                   WHEN r.currency <> r.debtor_currency THEN
                       'debtor ' || r.debtor_id || ' has documents in ' || r.debtor_currency
                       || ' in this file'
                   ELSE 'debtor ' || r.debtor_id || ' is kept in ' || e.currency
                       || '; an incremental import cannot add ' || r.currency
               END AS reason
        FROM ranked r LEFT JOIN existing e ON e.debtor_id = r.debtor_id
        WHERE r.first_row <> r.row_number
           OR r.currency <> r.debtor_currency
           OR (NOT :full_snapshot AND e.currency IS NOT NULL AND e.currency <> r.currency)
    ), recorded AS (
        INSERT INTO staged_rejections (row_number, field, value, reason)
        SELECT row_number, field, value, reason FROM bad
    )
    DELETE FROM staged s USING bad WHERE s.ctid = bad.row_id
    """
)

# Each file debtor in one sort of its rows in file order: their digest (each row's `SourceDigest`
# comes with it) and the last row, whose contact and attributes the debtor keeps. The same rows
# under no interest policy give the same state: such a debtor is skipped below without building
# its documents or its JSON.
FILE_DEBTORS = text(
    """
    CREATE TEMPORARY TABLE file_debtors ON COMMIT DROP AS
    SELECT debtor_id, name, email, phone, country, time_zone, locale, postal_address, zone,
           customer_type, risk_score, attributes, currency, md5(rows_digest) AS source_digest
    FROM (
        SELECT debtor_id, name, email, phone, country, time_zone, locale, postal_address, zone,
               customer_type, risk_score, attributes, currency,
               string_agg(source_digest, ''::bytea) OVER whole AS rows_digest,
               row_number() OVER whole = count(*) OVER whole AS last_row
        FROM staged
        WINDOW whole AS (PARTITION BY debtor_id ORDER BY row_number
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ) numbered
    WHERE last_row
    """
)

# Debtors whose rows are exactly those that set their current state: nothing to decide.
# (With interest accruing, the same rows on a later day are a new balance: no shortcut.)
FIND_UNCHANGED = text(
    """
    CREATE TEMPORARY TABLE unchanged ON COMMIT DROP AS
    SELECT p.debtor_id, p.balance_minor, p.currency
    FROM file_debtors f
    JOIN ingest.debtors p ON p.tenant_id = :tenant_id AND p.debtor_id = f.debtor_id
    WHERE p.source_digest = f.source_digest AND CAST(:daily_rate AS numeric) IS NULL
    """
)
# From here on, `staged` and `file_debtors` hold the debtors whose state this import decides.
SKIP_UNCHANGED = text(
    """
    WITH skipped AS (DELETE FROM file_debtors f USING unchanged u WHERE f.debtor_id = u.debtor_id)
    DELETE FROM staged s USING unchanged u WHERE s.debtor_id = u.debtor_id
    """
)

# The debtor's documents after this import: the file's rows, plus (incremental mode) the open
# documents the file did not mention. Interest accrues on overdue principal at the tenant's daily
# rate, counted in the debtor's own calendar, rounded half-even to the minor unit.
BUILD_NEW_DOCUMENTS = text(
    """
    CREATE TEMPORARY TABLE new_documents ON COMMIT DROP AS
    WITH listed AS (
        -- One sort in key order: a document the file lists again comes before (and replaces)
        -- the stored one, and the documents come out in the order they are stored.
        SELECT DISTINCT ON (debtor_id, document_id) * FROM (
            SELECT debtor_id, document_id, kind, product, issued_on, due_on,
                   principal_minor, interest_minor, fees_minor, currency, time_zone, false AS kept
            FROM staged
            UNION ALL
            SELECT d.debtor_id, d.document_id, d.kind, d.product, d.issued_on, d.due_on,
                   d.principal_minor, d.interest_minor, d.fees_minor, d.currency, f.time_zone, true
            FROM ingest.documents d
            JOIN file_debtors f ON f.debtor_id = d.debtor_id
            WHERE NOT :full_snapshot AND d.tenant_id = :tenant_id AND d.status = 'open'
        ) candidates
        ORDER BY debtor_id, document_id, kept
    )
    SELECT *,
           -- The document as `DebtDocument` JSON, concatenated rather than built with nested
           -- json_build_object calls (several times slower at a million documents). Kinds,
           -- currencies, numbers and ISO dates need no escaping; free text goes through to_json.
           '{"document_id":' || to_json(document_id)::text
           || ',"kind":"' || kind
           || '","product":' || coalesce(to_json(product)::text, 'null')
           || ',"issued_on":' || coalesce('"' || issued_on || '"', 'null')
           || ',"due_on":"' || due_on
           || '","amount":{"amount_minor":'
           || (principal_minor + interest_minor + accrued_minor + fees_minor)
           || ',"currency":"' || currency
           || '"},"principal":{"amount_minor":' || principal_minor
           || ',"currency":"' || currency
           || '"},"interest":{"amount_minor":' || (interest_minor + accrued_minor)
           || ',"currency":"' || currency
           || '"},"fees":{"amount_minor":' || fees_minor
           || ',"currency":"' || currency || '"}}' AS document_json
    FROM (
        SELECT listed.*,
               CASE
                   WHEN CAST(:daily_rate AS numeric) IS NULL OR kind = 'credit_note'
                        OR principal_minor <= 0 THEN 0
                   ELSE round(
                       principal_minor * CAST(:daily_rate AS numeric)
                       * greatest(
                           0, (CAST(:as_of AS timestamptz) AT TIME ZONE time_zone)::date - due_on
                       )
                   )::bigint
               END AS accrued_minor
        FROM listed
    ) accrued
    -- Stored in key order: the debtors' totals and the inserts below read it in that order.
    ORDER BY debtor_id, document_id
    """
)

# One row per debtor whose state this import decides: the file's debtors, and (full snapshot)
# every debtor with open documents that the file no longer lists.
BUILD_NEW_STATE = text(
    f"""
    CREATE TEMPORARY TABLE new_state ON COMMIT DROP AS
    WITH file_state AS (
        SELECT c.debtor_id,
               jsonb_build_object(
                   'name', c.name, 'email', c.email, 'phone', c.phone, 'country', c.country,
                   'time_zone', c.time_zone, 'locale', c.locale
               -- The key only when there is an address: a contact without one stays as it was
               -- (and so does its fingerprint).
               ) || CASE WHEN c.postal_address IS NULL THEN '{{}}'::jsonb
                         ELSE jsonb_build_object('postal_address', c.postal_address) END
                 AS contact,
               jsonb_build_object(
                   'zone', c.zone, 'customer_type', c.customer_type, 'risk_score', c.risk_score,
                   'custom', coalesce(c.attributes, '{{}}'::jsonb)
               ) AS attributes,
               c.currency, c.source_digest
        FROM file_debtors c
    ), dropped AS (
        SELECT d.debtor_id, d.contact, d.attributes, d.currency, NULL AS source_digest
        FROM ingest.debtors d
        WHERE :full_snapshot AND d.tenant_id = :tenant_id
          AND (CAST(:partitions AS integer) = 1 OR {partition_sql("d.debtor_id")} = :partition)
          AND NOT EXISTS (SELECT 1 FROM file_debtors f WHERE f.debtor_id = d.debtor_id)
          AND NOT EXISTS (SELECT 1 FROM unchanged u WHERE u.debtor_id = d.debtor_id)
          AND EXISTS (
              SELECT 1 FROM ingest.documents o
              WHERE o.tenant_id = d.tenant_id AND o.debtor_id = d.debtor_id AND o.status = 'open'
          )
    ), decided AS (
        SELECT * FROM file_state UNION ALL SELECT * FROM dropped
    ), totals AS (
        -- Aggregates fed in key order (`new_documents` is stored so: its sort finds it sorted)
        -- list each debtor's documents in document order without a sort per debtor.
        SELECT n.debtor_id,
               '[' || string_agg(n.document_json, ',') || ']' AS documents,
               '[' || string_agg(to_json(n.document_id)::text, ',') || ']' AS document_ids,
               sum(n.principal_minor + n.interest_minor + n.accrued_minor + n.fees_minor)::bigint
                   AS balance_minor,
               coalesce(
                   min(n.due_on) FILTER (
                       WHERE n.principal_minor + n.interest_minor + n.accrued_minor + n.fees_minor > 0
                   ),
                   min(n.due_on)
               ) AS oldest_due_on,
               bool_or(n.kept) AS kept_any
        FROM (SELECT * FROM new_documents ORDER BY debtor_id, document_id) n
        GROUP BY n.debtor_id
    )
    SELECT d.debtor_id, d.contact, d.attributes, d.currency,
           coalesce(t.documents, '[]') AS documents,
           coalesce(t.document_ids, '[]') AS document_ids,
           coalesce(t.balance_minor, 0) AS balance_minor,
           coalesce(
               t.oldest_due_on,
               (SELECT min(o.due_on) FROM ingest.documents o
                WHERE o.tenant_id = :tenant_id AND o.debtor_id = d.debtor_id)
           ) AS oldest_due_on,
           md5(d.contact::text || d.attributes::text || coalesce(t.documents, '[]')) AS fingerprint,
           CASE WHEN CAST(:daily_rate AS numeric) IS NULL AND NOT coalesce(t.kept_any, false)
                THEN d.source_digest END AS source_digest,
           p.fingerprint AS previous_fingerprint,
           p.source_digest AS previous_source_digest,
           p.balance_minor AS previous_balance_minor,
           p.currency AS previous_currency
    FROM decided d
    LEFT JOIN totals t ON t.debtor_id = d.debtor_id
    LEFT JOIN ingest.debtors p ON p.tenant_id = :tenant_id AND p.debtor_id = d.debtor_id
    """
)
ANALYZE_NEW_STATE = text("ANALYZE new_state")

# Per changed debtor seen before, which documents were added, changed, or settled by the
# creditor. (A new debtor's documents are all added: WRITE_EVENTS lists them without this table.)
BUILD_DOCUMENT_CHANGES = text(
    """
    CREATE TEMPORARY TABLE document_changes ON COMMIT DROP AS
    WITH changed AS (
        SELECT debtor_id FROM new_state
        WHERE previous_fingerprint IS NOT NULL AND previous_fingerprint <> fingerprint
    ), old AS (
        SELECT o.* FROM ingest.documents o JOIN changed c USING (debtor_id)
        WHERE o.tenant_id = :tenant_id AND o.status = 'open'
    ), new AS (
        SELECT n.* FROM new_documents n JOIN changed c USING (debtor_id)
    )
    SELECT coalesce(new.debtor_id, old.debtor_id) AS debtor_id,
           coalesce(new.document_id, old.document_id) AS document_id,
           CASE
               WHEN old.document_id IS NULL THEN 'added'
               WHEN new.document_id IS NULL THEN 'settled'
               ELSE 'changed'
           END AS change
    FROM new FULL JOIN old
      ON old.debtor_id = new.debtor_id AND old.document_id = new.document_id
    WHERE old.document_id IS NULL OR new.document_id IS NULL
       OR (old.kind, old.product, old.issued_on, old.due_on, old.principal_minor,
           old.interest_minor, old.fees_minor, old.currency)
          IS DISTINCT FROM
          (new.kind, new.product, new.issued_on, new.due_on, new.principal_minor,
           new.interest_minor, new.fees_minor, new.currency)
    """
)

# New debtors are plain inserts (no conflict is possible: they were looked up above); known ones
# are updated when their state moved, or to record the digest that lets the next import skip them.
WRITE_NEW_DEBTORS = text(
    """
    INSERT INTO ingest.debtors (tenant_id, debtor_id, contact, attributes, balance_minor, currency,
                                oldest_due_on, fingerprint, source_digest, last_import_id)
    SELECT :tenant_id, debtor_id, contact, attributes, balance_minor, currency, oldest_due_on,
           fingerprint, source_digest, :import_id
    FROM new_state
    WHERE previous_fingerprint IS NULL
    -- In key order, each row lands on the primary key's rightmost page (PostgreSQL's fast path)
    -- instead of a random one: a third less time for a million documents, sort included.
    ORDER BY debtor_id
    """
)

UPDATE_DEBTORS = text(
    """
    UPDATE ingest.debtors d SET
        contact = n.contact, attributes = n.attributes, balance_minor = n.balance_minor,
        currency = n.currency, oldest_due_on = n.oldest_due_on, fingerprint = n.fingerprint,
        source_digest = n.source_digest, last_import_id = :import_id, updated_at = now()
    FROM new_state n
    WHERE d.tenant_id = :tenant_id AND d.debtor_id = n.debtor_id
      AND n.previous_fingerprint IS NOT NULL
      AND (n.previous_fingerprint <> n.fingerprint
           OR n.previous_source_digest IS DISTINCT FROM n.source_digest)
    """
)

WRITE_NEW_DOCUMENTS = text(
    """
    INSERT INTO ingest.documents (tenant_id, debtor_id, document_id, kind, product, issued_on,
                                  due_on, principal_minor, interest_minor, fees_minor, currency,
                                  status, settled_at, last_import_id)
    SELECT :tenant_id, n.debtor_id, n.document_id, n.kind, n.product, n.issued_on, n.due_on,
           n.principal_minor, n.interest_minor, n.fees_minor, n.currency, 'open', NULL, :import_id
    FROM new_documents n JOIN new_state s USING (debtor_id)
    WHERE s.previous_fingerprint IS NULL
    ORDER BY n.debtor_id, n.document_id  -- in key order, as the debtors above
    """
)

WRITE_CHANGED_DOCUMENTS = text(
    """
    WITH changed AS (
        SELECT debtor_id FROM new_state
        WHERE previous_fingerprint IS NOT NULL AND previous_fingerprint <> fingerprint
    ), settled AS (
        UPDATE ingest.documents o SET status = 'settled', settled_at = now(),
                                      last_import_id = :import_id
        FROM document_changes c
        WHERE c.change = 'settled' AND o.tenant_id = :tenant_id
          AND o.debtor_id = c.debtor_id AND o.document_id = c.document_id
    )
    INSERT INTO ingest.documents AS o (tenant_id, debtor_id, document_id, kind, product,
                                       issued_on, due_on, principal_minor, interest_minor,
                                       fees_minor, currency, status, settled_at, last_import_id)
    SELECT :tenant_id, n.debtor_id, n.document_id, n.kind, n.product, n.issued_on, n.due_on,
           n.principal_minor, n.interest_minor, n.fees_minor, n.currency, 'open', NULL, :import_id
    FROM new_documents n JOIN changed USING (debtor_id)
    ON CONFLICT (tenant_id, debtor_id, document_id) DO UPDATE SET
        kind = excluded.kind, product = excluded.product, issued_on = excluded.issued_on,
        due_on = excluded.due_on, principal_minor = excluded.principal_minor,
        interest_minor = excluded.interest_minor, fees_minor = excluded.fees_minor,
        currency = excluded.currency, status = 'open', settled_at = NULL,
        last_import_id = excluded.last_import_id
    """
)

# The `debt-imported` events, straight into the outbox in batch rows with their CloudEvents
# attributes; the JSON is concatenated from the parts built above (see BUILD_NEW_DOCUMENTS).
_CHANGED_DEBTS = (
    text(
        """
    WITH changes AS (
        SELECT debtor_id,
               '[' || coalesce(string_agg(to_json(document_id)::text, ',' ORDER BY document_id)
                               FILTER (WHERE change = 'added'), '') || ']' AS added,
               '[' || coalesce(string_agg(to_json(document_id)::text, ',' ORDER BY document_id)
                               FILTER (WHERE change = 'changed'), '') || ']' AS changed,
               '[' || coalesce(string_agg(to_json(document_id)::text, ',' ORDER BY document_id)
                               FILTER (WHERE change = 'settled'), '') || ']' AS settled
        FROM document_changes GROUP BY debtor_id
    )
    SELECT gen_random_uuid() AS event_id, s.debtor_id,
               '{"tenant_id":' || to_json(CAST(:tenant_id AS text))::text
               || ',"debtor_id":' || to_json(s.debtor_id)::text
               || ',"import_id":"' || CAST(:import_id AS text)
               || '","as_of":' || to_json(CAST(:as_of AS timestamptz))::text
               || ',"contact":' || s.contact::text
               || ',"attributes":' || s.attributes::text
               || ',"documents":' || s.documents
               || ',"balance":{"amount_minor":' || s.balance_minor
               || ',"currency":"' || s.currency
               || '"},"oldest_due_on":' || coalesce('"' || s.oldest_due_on || '"', 'null')
               || ',"change":"' || CASE
                   WHEN s.previous_fingerprint IS NULL THEN 'new'
                   WHEN s.documents = '[]' THEN 'settled'
                   ELSE 'changed' END
               || '","previous_balance":' || CASE
                   WHEN s.previous_fingerprint IS NULL THEN 'null'
                   ELSE '{"amount_minor":' || s.previous_balance_minor
                        || ',"currency":"' || s.previous_currency || '"}' END
               || ',"documents_added":'
               || CASE WHEN s.previous_fingerprint IS NULL THEN s.document_ids
                       ELSE coalesce(c.added, '[]') END
               || ',"documents_changed":' || coalesce(c.changed, '[]')
               || ',"documents_settled":' || coalesce(c.settled, '[]')
               || '}' AS payload
    FROM new_state s LEFT JOIN changes c USING (debtor_id)
    WHERE s.previous_fingerprint IS DISTINCT FROM s.fingerprint
    """
    )
    .columns(column("event_id", PgUUID), column("debtor_id", Text), column("payload", Text))
    .subquery("events")
)
WRITE_EVENTS = insert_event_batches(
    schema.outbox,
    _CHANGED_DEBTS,
    tenant_id=bindparam("tenant_id", type_=Text),
    topic=Topic.DEBT_IMPORTED.value,
    event_type=event_type_of(DebtImported),
    source=bindparam("source", type_=Text),
    correlation_id=bindparam("correlation_id", type_=Text),
)

KEEP_REJECTIONS = text(
    """
    INSERT INTO ingest.rejections (import_id, tenant_id, row_number, field, value, reason)
    SELECT :import_id, :tenant_id, row_number, field, value, reason FROM staged_rejections
    ON CONFLICT DO NOTHING
    """
)

REPORT = text(
    """
    SELECT
        (SELECT count(*) FROM new_state WHERE previous_fingerprint IS NULL) AS debtors_new,
        (SELECT count(*) FROM new_state
         WHERE previous_fingerprint IS NOT NULL AND previous_fingerprint <> fingerprint
           AND documents <> '[]') AS debtors_changed,
        (SELECT count(*) FROM new_state WHERE previous_fingerprint = fingerprint)
            + (SELECT count(*) FROM unchanged) AS debtors_unchanged,
        (SELECT count(*) FROM new_state
         WHERE previous_fingerprint IS NOT NULL AND previous_fingerprint <> fingerprint
           AND documents = '[]') AS debtors_settled,
        (SELECT count(DISTINCT row_number) FROM staged_rejections) AS rows_rejected,
        (SELECT coalesce(jsonb_object_agg(currency, total), '{}'::jsonb) FROM (
            SELECT currency, sum(balance_minor)::bigint AS total FROM (
                SELECT currency, balance_minor FROM new_state WHERE documents <> '[]'
                UNION ALL
                SELECT currency, balance_minor FROM unchanged
            ) balances GROUP BY currency) b) AS balance_by_currency
    """
)

CONSOLIDATION_STEPS: tuple[tuple[str, TextClause | Insert], ...] = (
    ("reject_conflicts", REJECT_CONFLICTS),
    ("file_debtors", FILE_DEBTORS),
    ("find_unchanged", FIND_UNCHANGED),
    ("skip_unchanged", SKIP_UNCHANGED),
    ("analyze_file_debtors", ANALYZE_FILE_DEBTORS),
    ("build_new_documents", BUILD_NEW_DOCUMENTS),
    ("build_new_state", BUILD_NEW_STATE),
    ("analyze_new_state", ANALYZE_NEW_STATE),
    ("build_document_changes", BUILD_DOCUMENT_CHANGES),
    ("write_new_debtors", WRITE_NEW_DEBTORS),
    ("update_debtors", UPDATE_DEBTORS),
    ("write_new_documents", WRITE_NEW_DOCUMENTS),
    ("write_changed_documents", WRITE_CHANGED_DOCUMENTS),
    ("write_events", WRITE_EVENTS),
    ("keep_rejections", KEEP_REJECTIONS),
)
