DROP TABLE payer_authorizations;
DROP TABLE appointments;
