DROP TABLE proxy_assignments;
DROP TABLE care_team_assignments;
DROP TABLE contact_methods;
DROP TABLE patients;
DROP TABLE providers;
