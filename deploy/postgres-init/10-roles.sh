#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory: the app and system roles
# with the passwords from .env (backoffice migrate then finds them and grants what each needs).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$APP_DB_PASSWORD" -v system_password="$SYSTEM_DB_PASSWORD" <<'SQL'
CREATE ROLE backoffice_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_password';
CREATE ROLE backoffice_system LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS PASSWORD :'system_password';
SQL
