DROP FUNCTION app.user_clinics();
