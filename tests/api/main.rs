mod checkout_retry;

fn main(){}
