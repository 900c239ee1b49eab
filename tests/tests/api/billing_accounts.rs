//! The clinic's own billing: payments, refunds, balances, subscription overrides.
