Feature: One request is one trace
  Every process of the stack reports what it does to Zipkin. Creating a user goes through the
  gateway to the user service, which announces it through RabbitMQ to slack-queue: all of that
  is one trace, whose id the gateway hands back in the "x-trace-id" header.

  Scenario: Creating a user is one trace across gateway, user and slack-queue
    Given I am signed in as "tracy"
    When I create a user named "Tracy" with a new email address
    Then the answer is 201
    And the answer carries its trace id
    And that trace soon holds spans from each of these services:
      | gateway     |
      | user        |
      | slack-queue |
    And every span of that trace soon hangs from one single root span
