-- The Foundry Registry's entities (foundry-init.ps1, market-create.ps1, symbol-create.ps1): a
-- Registry per market, an Issuer and a Token per symbol, the token linked to its market's registry
-- (RegistryToToken) and owned by its issuer (IssuerToToken). Holdings are of tokens: a token's code
-- is its instrument code SYMBOL.MARKET, the holdings' instrument.

create table registries (
    -- the market code (market-create.ps1 defines the Registry entity under it)
    code text primary key,
    exchange text not null,
    flow_id text not null,
    defined_at timestamptz not null
);

create table issuers (
    code text primary key,
    flow_id text not null,
    defined_at timestamptz not null
);

create table tokens (
    -- "${SymbolCode}.${MarketCode}"
    code text primary key,
    registry text not null references registries (code),
    issuer text not null references issuers (code),
    name text not null,
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    flow_id text not null,
    defined_at timestamptz not null
);

-- Shares issued into or reclaimed from an account (account-issue.ps1, account-reclaim.ps1), not
-- bought. A reference is taken once per account: the same issue sent again under a new event id
-- is refused, naming the earlier one.
create table holding_movements (
    seq bigint generated always as identity primary key,
    flow_id text not null,
    account_id text not null references accounts (account_id),
    token text not null references tokens (code),
    delta bigint not null check (delta <> 0),
    holding_after bigint not null check (holding_after >= 0),
    reference text not null,
    applied_at timestamptz not null,
    unique (account_id, reference)
);
