DROP FUNCTION app.sync_clinic_budgets(timestamptz, uuid[], bigint[], bigint[]);
DROP TABLE clinic_budget_usage;
DROP TABLE clinic_budgets;
