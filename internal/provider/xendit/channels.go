package xendit

import "github.com/paygate/paygate/internal/provider"

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
	{Method: "ovo", Family: provider.FamilyEWallet, Code: "OVO", Hosted: true,
		Note: "OVO's direct flow needs the customer's mobile number, which paygate does not hold: the hosted page asks for it"},
	{Method: "gopay", Family: provider.FamilyEWallet, Code: "QRIS", Hosted: true,
		Note: "Xendit has no GoPay channel; GoPay pays QRIS codes, shown on the hosted page"},
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
		Note: "Xendit's Indonesian card acquiring takes Visa, Mastercard and JCB: hosted checkout"},
	{Method: "american express", Family: provider.FamilyCheckout, Hosted: true,
		Note: "not acquired in IDR by Xendit: hosted checkout"},
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
