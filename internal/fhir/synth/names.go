package synth

// Names and places of the synthetic population: common US given and
// family names, and real cities with one of their ZIP codes and their
// state (USPS), so addresses look plausible. Street numbers, phone numbers
// (555-01xx, reserved for fiction) and e-mail domains (example.org) are
// made up.

var femaleNames = []string{
	"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
	"Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
	"Carol", "Amanda", "Dorothy", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia",
	"Olivia", "Emma", "Ava", "Sophia", "Isabella", "Mia", "Amelia", "Harper", "Evelyn", "Abigail",
	"María", "Guadalupe", "Sofía", "Lucía", "Mei", "Hana", "Priya", "Aaliyah", "Zoë", "Renée", "Chloé", "Inés",
}

var maleNames = []string{
	"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles",
	"Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua",
	"Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward", "Jason", "Jeffrey", "Ryan",
	"Liam", "Noah", "Oliver", "Elijah", "Lucas", "Mason", "Logan", "Ethan", "Aiden", "Jackson",
	"José", "Luis", "Juan", "Carlos", "Miguel", "Wei", "Hiroshi", "Arjun", "Malik", "André", "François", "Zoltán",
}

var familyNames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
	"Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
	"Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
	"Chen", "Wang", "Kim", "Patel", "Singh", "O'Brien", "Müller", "Côté", "Álvarez", "Núñez", "Peña", "Yamamoto",
}

var streets = []string{
	"Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Pine Street", "Elm Street", "Washington Avenue",
	"Lake Shore Drive", "Park Place", "Hillcrest Road", "Sunset Boulevard", "River Road", "Church Street",
	"Highland Avenue", "Meadow Lane", "Franklin Street", "Jefferson Avenue", "Lincoln Way", "Willow Court", "Spring Street",
}

// city is a place patients and sites are in; zone is its standard-time
// offset (fixed, so every dateTime is stable).
type city struct {
	name, state, zip string
	area             string // telephone area code
	zone             int    // hours from UTC
}

var cities = []city{
	{"Boston", "MA", "02116", "617", -5}, {"Worcester", "MA", "01608", "508", -5},
	{"Providence", "RI", "02903", "401", -5}, {"Hartford", "CT", "06103", "860", -5},
	{"Albany", "NY", "12207", "518", -5}, {"Buffalo", "NY", "14202", "716", -5},
	{"Philadelphia", "PA", "19103", "215", -5}, {"Pittsburgh", "PA", "15222", "412", -5},
	{"Baltimore", "MD", "21201", "410", -5}, {"Richmond", "VA", "23219", "804", -5},
	{"Raleigh", "NC", "27601", "919", -5}, {"Atlanta", "GA", "30303", "404", -5},
	{"Miami", "FL", "33130", "305", -5}, {"Tampa", "FL", "33602", "813", -5},
	{"Columbus", "OH", "43215", "614", -5}, {"Detroit", "MI", "48226", "313", -5},
	{"Chicago", "IL", "60601", "312", -6}, {"Milwaukee", "WI", "53202", "414", -6},
	{"Minneapolis", "MN", "55401", "612", -6}, {"St. Louis", "MO", "63101", "314", -6},
	{"Nashville", "TN", "37203", "615", -6}, {"New Orleans", "LA", "70112", "504", -6},
	{"Austin", "TX", "78701", "512", -6}, {"Houston", "TX", "77002", "713", -6},
	{"Denver", "CO", "80202", "303", -7}, {"Albuquerque", "NM", "87102", "505", -7},
	{"Phoenix", "AZ", "85004", "602", -7}, {"Salt Lake City", "UT", "84101", "801", -7},
	{"Seattle", "WA", "98101", "206", -8}, {"Portland", "OR", "97204", "503", -8},
	{"Sacramento", "CA", "95814", "916", -8}, {"San Diego", "CA", "92101", "619", -8},
}
