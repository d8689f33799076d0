package web

import "time"

// CampaignSampleSize is how many people the dry run names
// (campaign.SampleSize).
const CampaignSampleSize = 10

// CampaignView is the Registration campaign page.
type CampaignView struct {
	Page
	Version int64
	Enabled bool
	// Interval and PerMinute are the form's text, kept as typed when a
	// value is refused.
	Interval, PerMinute         string
	NotRegistered, ReconfirmDue bool
	UpdatedBy                   string
	UpdatedAt                   time.Time
	MinInterval, MaxInterval    int
	MinPerMinute, MaxPerMinute  int
	// Running: a run is under way (Last). Next is when the next run starts
	// by itself, zero when none is scheduled.
	Running bool
	Last    *CampaignRun
	Next    time.Time
	// DryRun is set once the dry run ran; Enumeration is what it found,
	// DryRunError why it could not run (safe to show).
	DryRun      bool
	DryRunError string
	Enumeration *CampaignEnumeration
}

// CampaignRun is the latest run's progress.
type CampaignRun struct {
	State                 string // sending, finished, stopped
	Started, Ended        time.Time
	StartedBy             string
	Total, Queued         int
	Sent, Skipped, Failed int
}

// CampaignEnumeration is the dry run's result.
type CampaignEnumeration struct {
	At                          time.Time
	InScope                     int
	NotRegistered, ReconfirmDue int
	ToMail, NoAddress           int
	Sample                      []CampaignPerson
}

// CampaignPerson is one person of the dry run's sample.
type CampaignPerson struct {
	Login, Name, To, Why string
}
