DROP TABLE user_consents;
DROP TABLE consent_documents;
