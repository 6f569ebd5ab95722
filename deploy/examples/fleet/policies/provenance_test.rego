package provenance_test

import rego.v1

import data.provenance

rules := {
	"approved_sources": ["registry.example.com/vision"],
	"approved_datasets": ["coco-2017", "plant-a-cameras-2026"],
	"min_fairness": 0.8,
}

model(source, datasets, fairness) := {"model": {"name": "detector", "version": "7", "provenance": {
	"source": source, "datasets": datasets, "metrics": {"fairness": fairness},
}}}

test_approved_model_allowed if {
	count(provenance.deny) == 0 with input as model("registry.example.com/vision", ["coco-2017"], 0.91)
		with data.provenance_rules as rules
}

test_unfair_model_denied if {
	some msg in provenance.deny with input as model("registry.example.com/vision", ["coco-2017"], 0.62)
		with data.provenance_rules as rules
	contains(msg, "fairness 0.62 is below 0.8")
}

test_unknown_source_denied if {
	some msg in provenance.deny with input as model("hub.example.org/x", ["coco-2017"], 0.9)
		with data.provenance_rules as rules
	contains(msg, "is not approved")
}

test_unapproved_dataset_denied if {
	some msg in provenance.deny with input as model("registry.example.com/vision", ["scraped-web"], 0.9)
		with data.provenance_rules as rules
	contains(msg, "training data")
}

test_missing_fairness_denied if {
	m := {"model": {"name": "detector", "provenance": {"source": "registry.example.com/vision"}}}
	some msg in provenance.deny with input as m with data.provenance_rules as rules
	contains(msg, "no fairness score")
}
