package web

import "time"

// What the API tokens page names literally (not translated): the API's
// path and the header that carries a token.
const (
	apiPath      = "/api/v1"
	bearerHeader = "Authorization: Bearer"
)

// APITokenRow is one token in the API tokens table.
type APITokenRow struct {
	ID         int64
	Name       string
	RoleLabel  string
	State      string // active, expired or revoked
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time
	LastUsedIP string
}

// APITokensView is "Administration | API tokens".
type APITokensView struct {
	Page
	Tokens []APITokenRow
	Roles  []RoleOption
	// Kept input of the create form.
	NewName, NewRole, NewDays string
}

// APITokenCreatedView shows a new token, once.
type APITokenCreatedView struct {
	Page
	Name      string
	RoleLabel string
	Token     string
	ExpiresAt time.Time
	// Example is a curl line that uses the token.
	Example string
}
