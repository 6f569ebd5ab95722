# Model provenance (docs/ota.md): a model is activated only when this deny set is empty.
# edged evaluates it before downloading anything, with input.model = the bundle's artifact
# entry: name, version, sha256, size and provenance.
package provenance

import rego.v1

default min_fairness := 0.8

min_fairness := data.provenance_rules.min_fairness

deny contains msg if {
	not input.model.provenance.source in data.provenance_rules.approved_sources
	msg := sprintf("model %s: source %v is not approved", [input.model.name, input.model.provenance.source])
}

deny contains msg if {
	some dataset in object.get(input.model.provenance, "datasets", [])
	not dataset in data.provenance_rules.approved_datasets
	msg := sprintf("model %s: training data %v is not from an approved source", [input.model.name, dataset])
}

deny contains msg if {
	not is_number(input.model.provenance.metrics.fairness)
	msg := sprintf("model %s: no fairness score", [input.model.name])
}

deny contains msg if {
	input.model.provenance.metrics.fairness < min_fairness
	msg := sprintf("model %s: fairness %v is below %v", [input.model.name, input.model.provenance.metrics.fairness, min_fairness])
}
