DROP TABLE subscription_overrides;
DROP FUNCTION app.check_subscription_override();
DROP VIEW patient_balances;
DROP TABLE billing_transactions;
DROP FUNCTION app.check_billing_transaction();
