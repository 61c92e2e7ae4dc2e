-- The metrics scrape counts unsent e-mails; sent ones pile up for ever, so
-- only the unsent are indexed.
CREATE INDEX mail_outbox_unsent ON mail_outbox (status) WHERE status <> 'sent';
