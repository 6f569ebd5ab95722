package locality

import rego.v1

# Data may only be processed in the regions its classification allows.
deny contains msg if {
	some volume in input.request.object.spec.volumes
	class := volume.labels["apexlogic.ai/data-class"]
	not data.locality.allowed_regions[class][input.device.region]
	msg := sprintf("data of class '%v' may not be processed in region '%v'", [class, input.device.region])
}
