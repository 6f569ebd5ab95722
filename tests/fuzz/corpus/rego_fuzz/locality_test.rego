package locality_test

import rego.v1

request(class, region) := {
	"request": {"object": {"spec": {"volumes": [{"labels": {"apexlogic.ai/data-class": class}}]}}},
	"device": {"region": region},
}

test_personal_data_stays_in_the_eu if {
	count(data.locality.deny) == 0 with input as request("personal", "eu")
	count(data.locality.deny) == 1 with input as request("personal", "us")
}

test_public_data_goes_anywhere_listed if {
	count(data.locality.deny) == 0 with input as request("public", "us")
}
