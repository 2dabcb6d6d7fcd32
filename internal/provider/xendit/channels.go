package xendit

import (
	"fmt"
	"io"
	"strings"

	"github.com/paygate/paygate/internal/provider"
)

// Channel maps one of paygate's top-up methods to the way Xendit collects
// it.
type Channel struct {
	// Method is paygate's top-up method, canonical spelling.
	Method string
	// Family is what the customer is given to pay.
	Family provider.Family
	// Code is Xendit's channel_code; empty when the hosted checkout offers
	// every channel the account has enabled.
	Code string
	// Hosted is true when the payment goes through a Payment Session
	// (Xendit's hosted checkout page, POST /sessions) instead of a
	// payment request (POST /v3/payment_requests).
	Hosted bool
	// Note says why, where the mapping is not obvious.
	Note string
}

// Via names the API a channel is created with.
func (c Channel) Via() string {
	if c.Hosted {
		return "POST " + PathSessions + " (hosted checkout)"
	}
	return "POST " + PathPaymentRequests
}

// Channels maps each of paygate's 21 top-up methods to its Xendit channel,
// in the order of topup.Methods. Methods with no Xendit channel of their
// own go through hosted checkout; cards always do, so that no card number
// ever reaches paygate.
var Channels = []Channel{
	{Method: "alfamart", Family: provider.FamilyRetail, Code: "ALFAMART"},
	{Method: "indomart", Family: provider.FamilyRetail, Code: "INDOMARET"},
	{Method: "lawson", Family: provider.FamilyRetail, Code: "ALFAMART",
		Note: "Lawson Indonesia stores take Alfamart payment codes; Xendit has no Lawson channel of its own"},
	{Method: "dana", Family: provider.FamilyEWallet, Code: "DANA"},
	{Method: "ovo", Family: provider.FamilyEWallet, Code: "OVO"},
	{Method: "gopay", Family: provider.FamilyEWallet, Code: "GOPAY"},
	{Method: "linkaja", Family: provider.FamilyEWallet, Code: "LINKAJA"},
	{Method: "jenius", Family: provider.FamilyEWallet, Code: "JENIUSPAY"},
	{Method: "fastpay", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no Xendit channel: hosted checkout"},
	{Method: "kudo", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no Xendit channel: hosted checkout"},
	{Method: "bri", Family: provider.FamilyVirtualAccount, Code: "BRI_VIRTUAL_ACCOUNT"},
	{Method: "mandiri", Family: provider.FamilyVirtualAccount, Code: "MANDIRI_VIRTUAL_ACCOUNT"},
	{Method: "bca", Family: provider.FamilyVirtualAccount, Code: "BCA_VIRTUAL_ACCOUNT"},
	{Method: "bni", Family: provider.FamilyVirtualAccount, Code: "BNI_VIRTUAL_ACCOUNT"},
	{Method: "bukopin", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no Xendit virtual account at KB Bukopin: hosted checkout (any bank transfer)"},
	{Method: "e-banking", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no single channel: hosted checkout offers every bank channel"},
	{Method: "visa", Family: provider.FamilyCard, Code: "CARDS", Hosted: true,
		Note: "cards only through hosted checkout: no card number reaches paygate"},
	{Method: "mastercard", Family: provider.FamilyCard, Code: "CARDS", Hosted: true,
		Note: "cards only through hosted checkout: no card number reaches paygate"},
	{Method: "discover", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no channel of its own at Xendit: hosted checkout, which offers what the account accepts"},
	{Method: "american express", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no channel of its own at Xendit: hosted checkout, which offers what the account accepts"},
	{Method: "paypal", Family: provider.FamilyCheckout, Hosted: true,
		Note: "no Xendit channel: hosted checkout"},
}

var channelByMethod = func() map[string]Channel {
	m := make(map[string]Channel, len(Channels))
	for _, c := range Channels {
		m[c.Method] = c
	}
	return m
}()

// ChannelFor returns the channel of a top-up method (canonical spelling)
// and whether there is one.
func ChannelFor(method string) (Channel, bool) {
	c, ok := channelByMethod[method]
	return c, ok
}

// PayoutChannelCode is Xendit's payout channel code for paygate's bank
// code (ID_ and the bank's code, e.g. ID_BCA).
func PayoutChannelCode(bankCode string) string { return "ID_" + bankCode }

// WriteChannelTable writes Channels as a Markdown table (method, family,
// Xendit channel, API, note), for the docs.
func WriteChannelTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Method | Family | Xendit channel | API | Note |\n| --- | --- | --- | --- | --- |\n")
	for _, c := range Channels {
		code := "`" + c.Code + "`"
		if c.Code == "" {
			code = "any (hosted checkout)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s |\n", c.Method, c.Family, code, c.Via(), c.Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
