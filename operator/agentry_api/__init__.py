"""The AgentDeployment API (agentry.dev): the one contract shared by the operator, the runtime and the CRD."""
