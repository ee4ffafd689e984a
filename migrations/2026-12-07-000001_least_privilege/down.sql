ALTER TABLE comments NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY;
ALTER TABLE items NO FORCE ROW LEVEL SECURITY;
REVOKE SELECT ON pglive_settings FROM pglive_authenticator;
REVOKE pglive_user, pglive_anon FROM pglive_authenticator;
