-- Stripe confirms an attempt in the call that creates it, with the buyer's
-- PaymentMethod. Repeating that call with the attempt's idempotency key after
-- a lost answer (a retry, the reconciler, another instance) must send the
-- same parameters, so the method is kept with the attempt.
ALTER TABLE payments ADD COLUMN payment_method TEXT;
