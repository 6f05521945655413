// The operations dashboard: an Azure Monitor workbook over Application Insights. Its content is
// dashboard.workbook.json (the workbook's own serialized form; tools/render_workbook.py draws it from
// sample data for docs/operations.md). The placeholder there becomes the component's id.

@description('Azure region of the workbook.')
param location string

@description('Tags applied to the workbook.')
param tags object = {}

@description('Resource id of the Application Insights component the workbook queries.')
param applicationInsightsId string

@description('Name shown in the portal.')
param displayName string = 'Payment gateway operations'

resource dashboard 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per component, so a redeploy updates it.
  name: guid(applicationInsightsId, 'payment-gateway-operations')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: replace(loadTextContent('dashboard.workbook.json'), '__APPLICATION_INSIGHTS_ID__', applicationInsightsId)
  }
}

output id string = dashboard.id
output name string = dashboard.name
