// Alert rules over Application Insights (log search alerts) and, optionally, the action group they
// notify. Each query is its own file in queries/ (docs/operations.md says what each alert means and
// what to do). They read the telemetry names of docs/telemetry.md (customMetrics, dependencies) and,
// for needs_attention, the audit line in traces too.

@description('Azure region of the alert rules (the Application Insights component\'s region).')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Resource id of the Application Insights component the rules query.')
param applicationInsightsId string

@description('Suffix for resource names (the deployment\'s resource token).')
param nameSuffix string

@description('Resource id of an existing action group to notify. Empty: one is created for alertEmail.')
param actionGroupId string = ''

@description('Email address notified by a new action group, when actionGroupId is empty. Both empty: the rules fire in the portal only.')
param alertEmail string = ''

@description('New unknown outcomes in 15 minutes, for one gateway, that raise an alert.')
@minValue(1)
param unknownOutcomeThreshold int = 3

@description('5xx answers (502 excepted) in 15 minutes that raise an alert.')
@minValue(1)
param serverErrorThreshold int = 5

var createActionGroup = empty(actionGroupId) && !empty(alertEmail)

resource emailActionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (createActionGroup) {
  name: 'ag-payments-${nameSuffix}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'payments'
    enabled: true
    emailReceivers: [
      {
        name: 'operations'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = empty(actionGroupId) ? (createActionGroup ? [emailActionGroup.id] : []) : [actionGroupId]

var everyGateway = [
  {
    name: 'gateway'
    operator: 'Include'
    values: [
      '*'
    ]
  }
]

resource unknownOutcomes 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-unknown-outcomes-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments: unknown outcomes'
    description: 'A gateway left calls with an unknown outcome (502 outcome_unknown): it may have charged. docs/operations.md, "Alerts".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/unknown-outcomes.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'unknowns'
          operator: 'GreaterThanOrEqual'
          threshold: unknownOutcomeThreshold
          dimensions: everyGateway
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource needsAttention 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-needs-attention-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments: a record needs attention'
    description: 'Reconciliation could not settle a payment or refund; an operator must. docs/operations.md, "Unknown outcomes and needs_attention".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/needs-attention.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'records'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource serverErrors 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-server-errors-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments: server errors'
    description: 'The service answered 500 or 503 (credentials or a gateway unavailable). docs/operations.md, "Alerts".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/server-errors.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'errors'
          operator: 'GreaterThanOrEqual'
          threshold: serverErrorThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource credentialFailures 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-credential-failures-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments: credential failures'
    description: 'Key Vault could not be read, a merchant secret is malformed, or a gateway refused stored credentials. docs/operations.md, "Alerts".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/credential-failures.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'reason'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

// The two comparisons with a gateway's own normal level read two days of data: the query's range is
// overridden past the one-hour window the rule evaluates.
resource gatewayLatency 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-gateway-latency-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments: a gateway is much slower than usual'
    description: 'A gateway\'s p95 latency in the last hour is over twice its p95 of the two days before, and above 2 s. docs/operations.md, "Alerts".'
    severity: 3
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/gateway-latency.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: everyGateway
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource gatewayDeclines 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-gateway-declines-${nameSuffix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments: a gateway declines far more than usual'
    description: 'A gateway\'s decline rate in the last hour is over twice its rate of the two days before, and 20 points higher. docs/operations.md, "Alerts".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/gateway-declines.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: everyGateway
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

output actionGroupIds array = actionGroups
output ruleNames array = [
  unknownOutcomes.name
  needsAttention.name
  serverErrors.name
  credentialFailures.name
  gatewayLatency.name
  gatewayDeclines.name
]
