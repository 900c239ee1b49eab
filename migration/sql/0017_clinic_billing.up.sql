-- The clinic's own billing: payments, refunds and adjustments of a
-- patient's (or the clinic's own) account, a balance the database computes,
-- and overrides of the clinic's subscription plan granted by caregate's
-- super admins.

CREATE TABLE billing_transactions (
    id                  uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id     uuid NOT NULL REFERENCES organizations (id),
    -- Whose account: a patient's, or the clinic's own (e.g. a processor fee).
    owner_kind          text NOT NULL CHECK (owner_kind IN ('PATIENT', 'CLINIC')),
    patient_id          uuid,
    kind                text NOT NULL CHECK (kind IN ('PAYMENT', 'REFUND', 'ADJUSTMENT')),
    -- Minor units (cents). Payments and refunds are positive; an adjustment
    -- is signed (positive: the account owes more; negative: a write-off).
    amount_minor        bigint NOT NULL CHECK (amount_minor <> 0 AND abs(amount_minor) <= 100000000000),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status              text NOT NULL DEFAULT 'SUCCEEDED'
                        CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    -- The payment a refund returns money of.
    refund_of           uuid,
    -- How much of a payment has been refunded (kept by the refunds'
    -- trigger; the CHECK makes an over-refund impossible).
    refunded_minor      bigint NOT NULL DEFAULT 0,
    -- An external processor's reference (e.g. a payment intent id): stored,
    -- never called.
    processor           text CHECK (processor ~ '^[a-z0-9_-]{1,40}$'),
    processor_ref       text CHECK (length(processor_ref) BETWEEN 1 AND 255),
    -- The proxy grant under which a proxy paid (set by the trigger, never
    -- by the caller).
    managed_by_proxy_id uuid,
    description         text CHECK (length(btrim(description)) BETWEEN 1 AND 500),
    recorded_by         uuid REFERENCES users (id) DEFAULT app.current_user_id(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    FOREIGN KEY (organization_id, refund_of) REFERENCES billing_transactions (organization_id, id),
    FOREIGN KEY (organization_id, managed_by_proxy_id) REFERENCES proxy_assignments (organization_id, id),
    -- The polymorphic owner, held here: a patient's row names the patient,
    -- the clinic's names none.
    CONSTRAINT billing_transactions_owner_check CHECK ((owner_kind = 'PATIENT') = (patient_id IS NOT NULL)),
    CHECK (kind = 'ADJUSTMENT' OR amount_minor > 0),
    CHECK ((kind = 'REFUND') = (refund_of IS NOT NULL)),
    CONSTRAINT billing_transactions_refund_check
        CHECK (refunded_minor >= 0 AND (kind <> 'PAYMENT' OR refunded_minor <= amount_minor)),
    CHECK (kind = 'PAYMENT' OR refunded_minor = 0),
    CHECK ((processor IS NULL) = (processor_ref IS NULL))
);
CREATE INDEX billing_transactions_patient_idx ON billing_transactions (organization_id, patient_id, created_at);
-- A processor's reference is recorded once (a replayed webhook is refused).
CREATE UNIQUE INDEX billing_transactions_processor_key
    ON billing_transactions (organization_id, processor, processor_ref) WHERE processor IS NOT NULL;

-- A refund returns part of a succeeded payment of the same account and
-- currency. Adding it to the payment's refunded amount locks the payment
-- row, so concurrent refunds queue and the CHECK on refunded_minor holds
-- the sum to the payment. A proxy's payment names the grant it was made
-- under; a patient's own, none.
CREATE FUNCTION app.check_billing_transaction() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.kind, NEW.amount_minor, NEW.currency, NEW.owner_kind, NEW.patient_id,
                             NEW.refund_of, NEW.organization_id)
                            IS DISTINCT FROM (OLD.kind, OLD.amount_minor, OLD.currency, OLD.owner_kind,
                                              OLD.patient_id, OLD.refund_of, OLD.organization_id) THEN
        RAISE EXCEPTION 'TRANSACTION_FIXED' USING ERRCODE = 'CG409';
    END IF;
    -- Only a refund's own insert (this trigger, one level down) moves it.
    IF TG_OP = 'UPDATE' AND NEW.refunded_minor <> OLD.refunded_minor AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'refunded amounts follow refunds' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- A status moves once, from PENDING, and not by a patient or proxy.
    IF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status
       AND (OLD.status <> 'PENDING' OR app.has_role('PORTAL')) THEN
        RAISE EXCEPTION 'NOT_PENDING' USING ERRCODE = 'CG409';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.refunded_minor := 0;
        NEW.recorded_by := app.current_user_id();
        NEW.managed_by_proxy_id := NULL;
        IF app.has_role('PORTAL') THEN
            -- What a patient or proxy records waits for the clinic (or its
            -- processor's confirmation) before it counts.
            NEW.status := 'PENDING';
            -- A patient paying into their own chart, or a proxy under a live
            -- grant with the billing permission (named on the row); a grant
            -- revoked since the request began refuses the payment.
            IF NOT EXISTS (SELECT 1 FROM patients p
                           WHERE p.organization_id = NEW.organization_id AND p.id = NEW.patient_id
                             AND p.user_id = app.current_user_id()) THEN
                SELECT a.id INTO NEW.managed_by_proxy_id FROM proxy_assignments a
                WHERE a.organization_id = NEW.organization_id AND a.patient_id = NEW.patient_id
                  AND a.proxy_user_id = app.current_user_id() AND a.can_view_billing
                  AND a.revoked_at IS NULL AND a.granted_at <= now()
                  AND (a.expires_at IS NULL OR a.expires_at > now())
                ORDER BY a.granted_at DESC
                LIMIT 1;
                IF NEW.managed_by_proxy_id IS NULL THEN
                    RAISE EXCEPTION 'PROXY_SCOPE' USING ERRCODE = 'CG403';
                END IF;
            END IF;
        END IF;
        IF NEW.kind = 'REFUND' THEN
            UPDATE billing_transactions p SET refunded_minor = p.refunded_minor + NEW.amount_minor
            WHERE p.organization_id = NEW.organization_id AND p.id = NEW.refund_of
              AND p.kind = 'PAYMENT' AND p.status = 'SUCCEEDED'
              AND p.patient_id IS NOT DISTINCT FROM NEW.patient_id AND p.currency = NEW.currency;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'NOT_REFUNDABLE' USING ERRCODE = 'CG409';
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER billing_transactions_check BEFORE INSERT OR UPDATE ON billing_transactions
    FOR EACH ROW EXECUTE FUNCTION app.check_billing_transaction();

-- Each patient's balance per currency, computed from succeeded rows
-- (positive: the patient owes the clinic). A security-invoker view: the
-- caller's row-level security applies to the rows it sums.
CREATE VIEW patient_balances WITH (security_invoker = true) AS
SELECT organization_id, patient_id, currency,
       sum(CASE kind WHEN 'PAYMENT' THEN -amount_minor ELSE amount_minor END)::bigint AS balance_minor
FROM billing_transactions
WHERE patient_id IS NOT NULL AND status = 'SUCCEEDED'
GROUP BY organization_id, patient_id, currency;

ALTER TABLE billing_transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_transactions FORCE ROW LEVEL SECURITY;
-- Staff who handle money (ADMIN, STAFF) see and record the clinic's; a
-- portal user sees the patients whose billing they may view and pays for
-- them (a payment only).
CREATE POLICY tenant_isolation ON billing_transactions
    USING (organization_id = app.current_tenant_id()
           AND (app.has_role('ADMIN') OR app.has_role('STAFF')
                OR (owner_kind = 'PATIENT' AND patient_id = ANY (app.patient_scope('billing')))))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.has_role('ADMIN') OR app.has_role('STAFF')
                     OR (owner_kind = 'PATIENT' AND kind = 'PAYMENT'
                         AND patient_id = ANY (app.patient_scope('billing')))));

GRANT SELECT, INSERT ON billing_transactions TO caregate_app;
GRANT UPDATE (status, refunded_minor, updated_at) ON billing_transactions TO caregate_app;
GRANT SELECT ON patient_balances TO caregate_app;

CREATE TRIGGER billing_transactions_touch BEFORE UPDATE ON billing_transactions FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER billing_transactions_audit AFTER INSERT OR UPDATE OR DELETE ON billing_transactions FOR EACH ROW EXECUTE FUNCTION app.audit_row();

-- Overrides of a clinic's subscription plan. One active override per
-- clinic; granted and revoked only by a super admin in an (audited)
-- impersonation of that clinic; its admins see it.
CREATE TABLE subscription_overrides (
    id               uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    kind             text NOT NULL CHECK (kind IN ('FREE', 'TRIAL_EXTENSION', 'MANUAL_CANCEL', 'DISCOUNT')),
    discount_percent integer CHECK (discount_percent BETWEEN 0 AND 100),
    trial_ends_on    date,
    reason           text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    granted_by       uuid NOT NULL REFERENCES users (id),
    granted_at       timestamptz NOT NULL DEFAULT now(),
    revoked_by       uuid REFERENCES users (id),
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    CHECK ((kind = 'DISCOUNT') = (discount_percent IS NOT NULL)),
    CHECK ((kind = 'TRIAL_EXTENSION') = (trial_ends_on IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE UNIQUE INDEX subscription_overrides_active_key ON subscription_overrides (organization_id)
    WHERE revoked_at IS NULL;

-- Only what revoking changes may change.
CREATE FUNCTION app.check_subscription_override() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.granted_by := app.current_user_id();
        NEW.granted_at := now();
        NEW.revoked_by := NULL;
        NEW.revoked_at := NULL;
    ELSIF OLD.revoked_at IS NOT NULL
          OR (NEW.organization_id, NEW.kind, NEW.discount_percent, NEW.trial_ends_on, NEW.reason,
              NEW.granted_by, NEW.granted_at)
             IS DISTINCT FROM (OLD.organization_id, OLD.kind, OLD.discount_percent, OLD.trial_ends_on,
                               OLD.reason, OLD.granted_by, OLD.granted_at) THEN
        RAISE EXCEPTION 'ALREADY_REVOKED' USING ERRCODE = 'CG409';
    ELSE
        NEW.revoked_by := app.current_user_id();
        NEW.revoked_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER subscription_overrides_check BEFORE INSERT OR UPDATE ON subscription_overrides
    FOR EACH ROW EXECUTE FUNCTION app.check_subscription_override();

ALTER TABLE subscription_overrides ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscription_overrides FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscription_overrides
    USING (organization_id = app.current_tenant_id() AND app.has_role('ADMIN'))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
                AND app.is_super_admin() AND app.impersonator_id() IS NOT NULL);

GRANT SELECT, INSERT ON subscription_overrides TO caregate_app;
GRANT UPDATE (revoked_by, revoked_at, updated_at) ON subscription_overrides TO caregate_app;

CREATE TRIGGER subscription_overrides_touch BEFORE UPDATE ON subscription_overrides FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER subscription_overrides_audit AFTER INSERT OR UPDATE OR DELETE ON subscription_overrides FOR EACH ROW EXECUTE FUNCTION app.audit_row();
